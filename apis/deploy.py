"""Deploy from config files: float ONNX, Q/DQ ONNX per target, verification, TensorRT engine."""
from typing import Optional, Union

from mmengine.config import Config

from deployment.pipeline import DeployPipeline
from .launcher import resolve_device
from .user_input import check_input_file, merge_cfg_options, read_config


def deploy(deploy_config: Union[str, Config],
           model_config: Union[str, Config],
           checkpoint: str,
           work_dir: str,
           engine: Optional[str] = None,
           cfg_options: Optional[dict] = None,
           device: Optional[str] = None) -> dict:
    """Run every stage of ``deploy_config`` for the model of ``model_config`` + ``checkpoint``
    (float: PTQ as the deploy config says, on ``device``; quantized: its recipe and amax) into
    ``work_dir``. ``engine`` ('auto', 'require', 'skip') overrides ``tensorrt.build``;
    ``cfg_options`` override deploy config keys. Returns the report (also written as
    ``deploy_report.{json,md}``)."""
    deploy_cfg = (deploy_config if isinstance(deploy_config, Config) else read_config(
        deploy_config, 'deploy config', ('onnx_config', )))
    model_cfg = (model_config if isinstance(model_config, Config) else read_config(
        model_config, 'model config', ('model', )))
    check_input_file(checkpoint, 'checkpoint')
    merge_cfg_options(deploy_cfg, cfg_options or {})
    if engine:
        deploy_cfg.tensorrt.build = engine
    return DeployPipeline(deploy_cfg, model_cfg, checkpoint, work_dir,
                          resolve_device(device)).run()
