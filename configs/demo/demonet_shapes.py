# DemoNet on generated shape images: the built-in float training config.
custom_imports = dict(imports=['quantization', 'projects.Demo'], allow_failed_imports=False)

model = dict(type='DemoNet', width=16, num_classes=6)

_collate = dict(type='default_collate')
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    collate_fn=_collate,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SyntheticShapes', num_samples=2048, size=32, seed=0))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    collate_fn=_collate,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticShapes', num_samples=512, size=32, seed=1))
val_evaluator = dict(type='ShapeAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=3e-3, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=10, eta_min=3e-5)]

default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=10),
    epoch_seed=dict(type='EpochSeedHook'))
randomness = dict(seed=0)
work_dir = 'work_dirs/demonet_shapes'
