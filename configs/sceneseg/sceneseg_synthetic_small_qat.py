# QAT of the small SceneSeg with upstream's recipe: AdamW lr 1e-5, weight decay 1e-5, BatchNorm
# statistics frozen after epoch 1, quantizer ranges fixed after epoch 2 (they follow the data
# before), 4 epochs. Symmetric INT8 (zero-point 0) everywhere, ConvTranspose weights included.
#   python tools/train.py configs/sceneseg/sceneseg_synthetic_small_qat.py \
#       --load-from work_dirs/sceneseg_synthetic_small/epoch_20.pth
_base_ = ['./sceneseg_synthetic_small.py']

custom_hooks = [
    dict(
        type='QATHook',
        recipe=dict(type='SceneSegRecipe'),
        calib_batches=16,
        calib_method='mse',
        freeze_bn_epoch=1,
        freeze_quantizer_epoch=2)
]
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-5, weight_decay=1e-5))
param_scheduler = []
work_dir = 'work_dirs/sceneseg_synthetic_small_qat'
