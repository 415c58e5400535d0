# SceneSeg (Autoware AutoSeg) at upstream size: EfficientNet-B0 backbone, context, neck and head
# with upstream's module names (an upstream state_dict loads as it is), 320 x 640 RGB input,
# upstream normalisation and per-image class-weighted cross-entropy. Point data_root / datasets
# at the real data (root/<DATASET>/{images,gt_masks}/N.png; upstream crops per dataset).
_base_ = ['../_base_/default_runtime.py']
default_scope = 'mmengine'
custom_imports = dict(imports=['quantization', 'projects.SceneSeg'], allow_failed_imports=False)

model = dict(type='SceneSeg', width_mult=1.0, decoder_scale=1, context_grid=(10, 20))
data_root = 'data/sceneseg/'
datasets = ['ACDC', 'IDDAW', 'MUSES', 'Mapillary_Vistas', 'comma10k']
image_size = (320, 640)
crops = dict()  # {dataset: box or None} over upstream's crops (projects/SceneSeg/data/layout.py)

dataset_settings = dict(
    type='SceneSegDataset',
    data_root=data_root,
    datasets=datasets,
    image_size=image_size,
    crops=crops)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(split='train', **dataset_settings))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(split='val', **dataset_settings))
test_dataloader = val_dataloader
val_evaluator = dict(type='SceneSegIoU')
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=10, eta_min=1e-6)]
