# Pillar CenterPoint with the shapes and classes of AWML's t4dataset base config, built from
# mmdet3d's registered modules. Data: the synthetic lidar scenes (tools/generate_synthetic_lidar.py)
# in mmdet3d's format; point a user dataset here by changing dataset_type / data_root.
_base_ = ['../_base_/default_runtime.py']
default_scope = 'mmdet3d'
# `projects` and `projects/CenterPoint` are namespace packages (they merge with AWML's tree, whose
# projects.CenterPoint.models sits beside ours): each of our subpackages registers its own modules.
custom_imports = dict(
    imports=[
        'quantization', 'projects.CenterPoint.data', 'projects.CenterPoint.hooks',
        'projects.CenterPoint.metric', 'projects.CenterPoint.quantization'
    ],
    allow_failed_imports=False)

class_names = ['car', 'truck', 'bus', 'bicycle', 'pedestrian']
point_cloud_range = [-122.4, -122.4, -3.0, 122.4, 122.4, 5.0]
voxel_size = [0.24, 0.24, 8.0]
grid_size = [1020, 1020, 1]
out_size_factor = 2
pfn_channels = [32, 32]
backbone_channels = [64, 128, 256]
backbone_layers = [3, 5, 5]
neck_channels = [128, 128, 128]
head_channels = 64
max_voxels = 96000

model = dict(
    type='CenterPoint',
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        voxel=True,
        voxel_type='hard',
        voxel_layer=dict(
            max_num_points=32,
            voxel_size=voxel_size,
            point_cloud_range=point_cloud_range,
            max_voxels=(max_voxels, max_voxels),
            deterministic=True)),
    pts_voxel_encoder=dict(
        type='PillarFeatureNet',
        in_channels=4,  # x, y, z, time lag
        feat_channels=pfn_channels,
        with_distance=False,
        with_cluster_center=True,
        with_voxel_center=True,
        voxel_size=voxel_size,
        point_cloud_range=point_cloud_range,
        norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.01),
        legacy=False),
    pts_middle_encoder=dict(
        type='PointPillarsScatter', in_channels=pfn_channels[-1], output_shape=grid_size[:2]),
    pts_backbone=dict(
        type='SECOND',
        in_channels=pfn_channels[-1],
        out_channels=backbone_channels,
        layer_nums=backbone_layers,
        layer_strides=[1, 2, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        conv_cfg=dict(type='Conv2d', bias=False)),
    pts_neck=dict(
        type='SECONDFPN',
        in_channels=backbone_channels,
        out_channels=neck_channels,
        upsample_strides=[0.5, 1, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    pts_bbox_head=dict(
        type='CenterHead',
        in_channels=sum(neck_channels),
        tasks=[dict(num_class=5, class_names=class_names)],
        common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
        share_conv_channel=head_channels,
        bbox_coder=dict(
            type='CenterPointBBoxCoder',
            post_center_range=[-130.0, -130.0, -10.0, 130.0, 130.0, 10.0],
            max_num=500,
            score_threshold=0.1,
            out_size_factor=out_size_factor,
            voxel_size=voxel_size[:2],
            pc_range=point_cloud_range[:2],
            code_size=9),
        separate_head=dict(type='SeparateHead', init_bias=-4.595, final_kernel=1),
        loss_cls=dict(type='mmdet.GaussianFocalLoss', reduction='mean'),
        loss_bbox=dict(type='mmdet.L1Loss', reduction='mean', loss_weight=0.25),
        norm_bbox=True),
    train_cfg=dict(
        pts=dict(
            grid_size=grid_size,
            voxel_size=voxel_size,
            point_cloud_range=point_cloud_range,
            out_size_factor=out_size_factor,
            dense_reg=1,
            gaussian_overlap=0.1,
            max_objs=500,
            min_radius=2,
            code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2])),
    test_cfg=dict(
        pts=dict(
            post_center_limit_range=[-130.0, -130.0, -10.0, 130.0, 130.0, 10.0],
            max_per_img=500,
            max_pool_nms=False,
            min_radius=[1.0],
            score_threshold=0.1,
            pc_range=point_cloud_range[:2],
            out_size_factor=out_size_factor,
            voxel_size=voxel_size[:2],
            nms_type='circle',
            pre_max_size=1000,
            post_max_size=100,
            nms_thr=0.2)))

dataset_type = 'SyntheticLidarDataset'
data_root = 'work_dirs/data/synthetic_lidar/'
load_points = dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=[0, 1, 2, 4])
train_pipeline = [
    load_points,
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
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = [
    load_points,
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='Pack3DDetInputs', keys=['points']),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='infos_train.pkl',
        pipeline=train_pipeline,
        metainfo=dict(classes=class_names),
        box_type_3d='LiDAR',
        test_mode=False))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='infos_val.pkl',
        pipeline=test_pipeline,
        metainfo=dict(classes=class_names),
        box_type_3d='LiDAR',
        test_mode=True))
test_dataloader = val_dataloader

train_cfg = dict(by_epoch=True, max_epochs=50, val_interval=10)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=50, eta_min=3e-6)]
val_evaluator = dict(type='CenterDistanceMAP')
test_evaluator = val_evaluator
# mmdet3d 1.4 never runs SeparateHead.init_weights (see projects/CenterPoint/hooks.py).
custom_hooks = [dict(type='SeparateHeadInitHook')]
