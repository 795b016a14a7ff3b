"""Dependencies for the routes: the loaded model and the settings, from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .service import ModelService
from .settings import Settings


def get_service(request: Request) -> ModelService:
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    return request.app.state.service.settings


ServiceDep = Annotated[ModelService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
