"""sbsconvert: turn 2D photos and videos into stereo pairs for XR headsets."""

__version__ = "0.1.0"
