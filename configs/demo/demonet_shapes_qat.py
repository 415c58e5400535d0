# QAT of DemoNet: the float config plus one hook. Start from a float checkpoint with
#   python tools/train.py configs/demo/demonet_shapes_qat.py --load-from FLOAT.pth
_base_ = './demonet_shapes.py'

custom_hooks = [
    dict(
        type='QATHook',
        calib_batches=8,
        calib_method='mse',
        recipe=dict(fold_bn=True, fuse_relu=True))
]
train_cfg = dict(max_epochs=2, val_interval=2)
# CUDA-CenterPoint's habit: fine-tune at a learning rate 10x below the float training's.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=3e-4, weight_decay=1e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=2, eta_min=3e-6)]
work_dir = 'work_dirs/demonet_shapes_qat'
