"""Training data: the GoPro layout, and offline camera-shake pairs written in that layout."""

from .gopro import BLUR_KINDS, ImagePair, PairDataset, StepBatchSampler, find_pairs

__all__ = ["BLUR_KINDS", "ImagePair", "PairDataset", "StepBatchSampler", "find_pairs"]
