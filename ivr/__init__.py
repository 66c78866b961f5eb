"""IVR: menus, prompts, digit collection, caller identification and voicemail."""

from ivr.menu import GiveUp, Menu, MenuRun, PlayAndCollect, Route

__all__ = ["GiveUp", "Menu", "MenuRun", "PlayAndCollect", "Route"]
