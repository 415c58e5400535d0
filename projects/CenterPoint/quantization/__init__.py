from .recipe import (DEFAULT_CALIB_METHOD, DEFAULT_SKIP_LAYERS, centerpoint_recipe,
                     check_centerpoint, pfn_bn_pairs, secondfpn_concat)

__all__ = [
    'centerpoint_recipe', 'check_centerpoint', 'pfn_bn_pairs', 'secondfpn_concat',
    'DEFAULT_CALIB_METHOD', 'DEFAULT_SKIP_LAYERS'
]
