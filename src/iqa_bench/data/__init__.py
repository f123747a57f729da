"""Data: safe image decoding, built-in images, pretraining datasets and datamodules."""
