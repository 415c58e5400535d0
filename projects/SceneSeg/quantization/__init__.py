from .recipe import DEFAULT_CALIB_METHOD, DEFAULT_SKIP_LAYERS, check_sceneseg, sceneseg_recipe

__all__ = ['sceneseg_recipe', 'check_sceneseg', 'DEFAULT_CALIB_METHOD', 'DEFAULT_SKIP_LAYERS']
