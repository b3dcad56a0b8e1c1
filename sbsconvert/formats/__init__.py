"""File formats at the byte level: HEVC bitstreams (hevc/), ISO BMFF boxes (isobmff/), the HEIF
item model (heif/), stereo MPO, the MP4 st3d box and AVI's RIFF index. Pure functions on bytes and
box trees, no pixels and no codec: the stages above (decode, output, video, spatial_photo, info)
call them; they import nothing of sbsconvert outside this package."""
