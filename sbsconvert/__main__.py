from sbsconvert.cli import main

main()
