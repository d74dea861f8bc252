"""``/v1/whoami``: who a key is (its name, owner and role), never the key itself."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Caller
from ..schemas import Whoami
from .agents import _PROBLEM

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["whoami"],
    responses={
        401: {"description": "missing or invalid key", **_PROBLEM},
        429: {"description": "too many requests for this key; retry after Retry-After", **_PROBLEM},
    },
)


@router.get("/whoami", response_model=Whoami, summary="The key's name, owner and role")
async def whoami(caller: Caller) -> Whoami:
    return Whoami(key_name=caller.key_name, owner=caller.owner, role=caller.role.value)
