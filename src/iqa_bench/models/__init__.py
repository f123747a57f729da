"""Backbones (timm + a tiny CPU CNN) and small heads."""
