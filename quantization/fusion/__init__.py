"""Fusion passes; each returns how many pairs it fused."""
from .bn import find_bn_pairs, fold_bn, fuse_bn
from .relu import find_relu_pairs, fuse_relu

__all__ = ['fold_bn', 'find_bn_pairs', 'fuse_bn', 'find_relu_pairs', 'fuse_relu']
