# Base deploy config: float ONNX -> PTQ (or a quantized checkpoint) -> Q/DQ ONNX per placement
# target -> clean-up and TensorRT lint -> ONNX Runtime verification -> TensorRT engine.
custom_imports = dict(imports=['quantization', 'deployment'], allow_failed_imports=False)

onnx_config = dict(
    opset_version=17,
    input_names=['inputs'],
    output_names=['outputs'],
    input_shapes=dict(inputs=[1, 3, 224, 224]),  # -1 marks a dynamic dimension
    dynamic_axes=dict(),  # e.g. dict(inputs={0: 'batch'}, outputs={0: 'batch'})
)
# Used when the checkpoint is float; a quantized checkpoint brings its own recipe and amax.
quantization = dict(
    recipe=dict(),  # QuantRecipe fields
    calib_dataloader='train_dataloader',  # a dataloader key of the model config
    calib_batches=32,
    calib_method='mse',
    calib_kwargs=dict(),
)
targets = ['tensorrt', 'onnxruntime']
verification = dict(
    dataloader='val_dataloader',
    num_batches=4,
    # Feed ONNX outputs to the model config's val_evaluator as predictions (valid when the
    # model's 'predict' output equals its 'tensor' output).
    metric=False,
)
tensorrt = dict(
    build='auto',  # 'auto': build where TensorRT is installed; 'require': fail without it
    workspace_mb=2048,
    fp16=True,
    # [dict(inputs=[min_shape, opt_shape, max_shape])]; a model exported as several graphs:
    # dict(_delete_=True, graph_name=[...]) (see configs/centerpoint/deploy_centerpoint_split.py)
    profiles=[],
)
