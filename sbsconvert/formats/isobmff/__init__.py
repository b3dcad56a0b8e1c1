"""ISO base media file format (MP4/MOV/HEIF) boxes: read headers, parse and edit the box tree,
build boxes, and add boxes to a video track's sample entry in place. See boxes.py; the HEIF item
model (sbsconvert.formats.heif) and the MP4 st3d/spatial video boxes are built on it."""
