"""Visualisation: stick figures (skeleton), side-by-side comparison videos (animate), result plots (plots).

Submodules are imported on demand (``from src.viz import animate``) so that importing the package stays cheap.
"""
