from .qat_hook import QATHook

__all__ = ['QATHook']
