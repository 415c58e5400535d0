# The AWML-shaped CenterPoint, narrowed for the synthetic scenes (objects within 24 m) so it
# trains on 2 CPU cores: same modules, head layout and classes; ±25.6 m, 0.32 m pillars, 160 x 160
# grid; one PFN layer and 16 points per pillar (the PFN dominated the step time), backbone strides
# [2, 2, 2] with the head at 1/4 as in mmdet3d's nuScenes pillar config. A short schedule: AdamW
# at 2e-3 with warm-up and cosine decay, BatchNorm momentum 0.1 so the running statistics keep up.
_base_ = ['./centerpoint_pillar_awml_base.py']

point_cloud_range = [-25.6, -25.6, -3.0, 25.6, 25.6, 5.0]
voxel_size = [0.32, 0.32, 8.0]
grid_size = [160, 160, 1]
pfn_channels = [32]
out_size_factor = 4
backbone_channels = [32, 64, 128]
neck_channels = [64, 64, 64]
max_voxels = 20000
post_range = [-30.0, -30.0, -10.0, 30.0, 30.0, 10.0]
bn_2d = dict(type='BN', eps=1e-3, momentum=0.1)

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(
            max_num_points=16,
            voxel_size=voxel_size,
            point_cloud_range=point_cloud_range,
            max_voxels=(max_voxels, max_voxels))),
    pts_voxel_encoder=dict(
        feat_channels=pfn_channels,
        voxel_size=voxel_size,
        point_cloud_range=point_cloud_range,
        norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.1)),
    pts_middle_encoder=dict(in_channels=pfn_channels[-1], output_shape=grid_size[:2]),
    pts_backbone=dict(
        in_channels=pfn_channels[-1],
        out_channels=backbone_channels,
        layer_nums=[1, 2, 2],
        layer_strides=[2, 2, 2],
        norm_cfg=bn_2d),
    pts_neck=dict(in_channels=backbone_channels, out_channels=neck_channels, norm_cfg=bn_2d),
    pts_bbox_head=dict(
        in_channels=sum(neck_channels),
        share_conv_channel=32,
        bbox_coder=dict(
            post_center_range=post_range,
            voxel_size=voxel_size[:2],
            pc_range=point_cloud_range[:2],
            out_size_factor=out_size_factor)),
    train_cfg=dict(
        pts=dict(
            grid_size=grid_size,
            voxel_size=voxel_size,
            point_cloud_range=point_cloud_range,
            out_size_factor=out_size_factor)),
    test_cfg=dict(
        pts=dict(
            post_center_limit_range=post_range,
            pc_range=point_cloud_range[:2],
            voxel_size=voxel_size[:2],
            out_size_factor=out_size_factor)))

train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=[0, 1, 2, 4]),
        dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
        dict(
            type='GlobalRotScaleTrans',
            rot_range=[-0.3925, 0.3925],
            scale_ratio_range=[0.95, 1.05],
            translation_std=[0, 0, 0]),
        dict(
            type='RandomFlip3D',
            sync_2d=False,
            flip_ratio_bev_horizontal=0.5,
            flip_ratio_bev_vertical=0.5),
        dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
        dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
        dict(type='ObjectNameFilter', classes=['car', 'truck', 'bus', 'bicycle', 'pedestrian']),
        dict(type='PointShuffle'),
        dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
    ]))
val_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=[0, 1, 2, 4]),
        dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
        dict(type='Pack3DDetInputs', keys=['points']),
    ]))
test_dataloader = val_dataloader
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs, eta_min=2e-5),
]
work_dir = 'work_dirs/centerpoint_pillar_synthetic_small'
