"""Simic: the shaped reward, the gymnasium environment and masked PPO that train Tamiyo."""
