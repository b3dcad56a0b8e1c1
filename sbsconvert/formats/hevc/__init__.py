"""HEVC (H.265) bitstream tools: Annex B NAL units, RBSP bit reading/writing, parameter sets and
slice headers, and the assembly of two single-layer streams into one two-view MV-HEVC stream."""
