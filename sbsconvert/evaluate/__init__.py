"""Quality evaluation (`sbsconvert eval`): generated right views against real ones on stereo datasets.

datasets (find and load pairs: Middlebury 2014, KITTI 2015, generic), protocol (native or the
StereoDiffusion paper's resizing and disparity handling), metrics (PSNR, SSIM, LPIPS, occlusion
masks), runner (engines over pairs), report (tables, contact sheets), command (the click command).
"""
