# Runtime settings shared by the model configs (MMEngine hooks, environment, seed, logging).
# AtomicCheckpointHook and EpochSeedHook come from `quantization` (custom_imports): checkpoints
# written to a temporary name and renamed when complete, and every epoch seeded from
# (seed, epoch), so a killed run resumes to the weights of an uninterrupted one.
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    epoch_seed=dict(type='EpochSeedHook'))
env_cfg = dict(
    cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'), dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=False)
log_level = 'INFO'
load_from = None
resume = False
