# Base deploy config: float ONNX -> PTQ (or a quantized checkpoint) -> Q/DQ ONNX per placement
# target -> clean-up -> verification in the target's runtime (ONNX Runtime, OpenVINO) with the
# TensorRT lint or OpenVINO's per-layer precisions -> TensorRT engine.
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
    # batches of calib_dataloader the onnxruntime target's ranges before SiLU / GELU are fit on;
    # 0: the data-free range. On the trained small SceneSeg in ONNX Runtime fitting helped PTQ
    # with every layer INT8 (88.87 -> 89.56 mIoU), hurt PTQ with the default skip list
    # (90.82 -> 90.08) and the every-layer QAT model (91.10 -> 90.90)
    placement_batches=0,
)
# tensorrt: the Q/DQ graph for TensorRT (verified in ONNX Runtime); onnxruntime: its placement
# for ONNX Runtime's INT8 kernels; openvino: OpenVINO IR of the tensorrt graph, verified with
# OpenVINO's CPU INT8 kernels, with the precision each layer ran with.
targets = ['tensorrt', 'onnxruntime', 'openvino']
verification = dict(
    dataloader='val_dataloader',
    num_batches=4,
    # Feed ONNX outputs to the model config's val_evaluator as predictions (valid when the
    # model's 'predict' output equals its 'tensor' output).
    metric=False,
)
openvino = dict(
    # precision of the layers OpenVINO does not run INT8: 'f32' (the graph's own arithmetic),
    # 'bf16', or '' for OpenVINO's default on the CPU (bf16 where the CPU has it)
    inference_precision='f32',
)
tensorrt = dict(
    build='auto',  # 'auto': build where TensorRT is installed; 'require': fail without it
    workspace_mb=2048,
    fp16=True,
    # [dict(inputs=[min_shape, opt_shape, max_shape])]; a model exported as several graphs:
    # dict(_delete_=True, graph_name=[...]) (see configs/centerpoint/deploy_centerpoint_split.py)
    profiles=[],
)
