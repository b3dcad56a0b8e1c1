"""HEIF (ISO/IEC 23008-12) at the byte level, on the generic ISO BMFF box tree of
sbsconvert.formats.isobmff.boxes: the item and property model of a HEIF `meta` box (items.py) and the
camera and stereo-group boxes of spatial photos (camera.py). Pure Python, no codec: images are encoded by pillow_heif, the boxes here add
what it cannot write."""
