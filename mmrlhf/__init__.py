"""mmrlhf: multimodal (image + text) reinforcement learning from human and simulated feedback.

Importing the package registers `MyMultimodalEnv` with Gymnasium and RLlib.
"""

from mmrlhf.envs import EnvConfig, MyMultimodalEnv

__all__ = ["EnvConfig", "MyMultimodalEnv"]
__version__ = "0.1.0"
