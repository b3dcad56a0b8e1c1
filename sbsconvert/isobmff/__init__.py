"""ISO base media file format (MP4/MOV/HEIF) boxes: read the box tree, build boxes, and add boxes
to a video track's sample entry in place. See boxes.py."""
