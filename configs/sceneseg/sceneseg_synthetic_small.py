# SceneSeg narrowed for the synthetic road scenes (tools/generate_synthetic_roads.py) so it trains
# on 2 CPU cores in minutes: backbone width 0.25, context / neck / head widths / 16, 96 x 192
# input (context grid 3 x 6); 1.1 M parameters. Same module tree and layer names as the full model.
_base_ = ['./sceneseg_base.py']

model = dict(width_mult=0.25, decoder_scale=16, context_grid=(3, 6))
data_root = 'work_dirs/data/synthetic_roads/'
datasets = ['synthetic_day', 'synthetic_dusk', 'synthetic_rain_hood']
image_size = (96, 192)
# the bonnet style is cropped as upstream crops comma10k: (0, 0, W - 1, 0.7 H) of 240 x 480
crops = dict(synthetic_rain_hood=(0, 0, 479, 168))
dataset_settings = dict(data_root=data_root, datasets=datasets, image_size=image_size, crops=crops)
train_dataloader = dict(batch_size=8, dataset=dataset_settings)
val_dataloader = dict(batch_size=8, dataset=dataset_settings)
test_dataloader = val_dataloader

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs, eta_min=2e-5),
]
work_dir = 'work_dirs/sceneseg_synthetic_small'
