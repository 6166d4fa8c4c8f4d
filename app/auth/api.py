"""JSON routes for the caller's account and API tokens (/api/v1)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from app.auth import service as auth_service
from app.auth.dependencies import CurrentUser, SessionDep, SiteAdmin
from app.core.ids import Id

router = APIRouter(prefix="/api/v1", tags=["account"])


class UserPublic(BaseModel):
    id: int
    email: str
    display_name: str
    is_admin: bool


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class TokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="shown only in this response; store it now")


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic(
        id=user.id or 0, email=user.email, display_name=user.display_name, is_admin=user.is_admin
    )


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    return [
        TokenPublic.model_validate(t.model_dump())
        for t in auth_service.list_api_tokens(session, user)
    ]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, session: SessionDep, user: CurrentUser) -> TokenCreated:
    created = auth_service.create_api_token(session, user, body.name)
    return TokenCreated.model_validate({**created.record.model_dump(), "token": created.token})


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: Id, session: SessionDep, user: CurrentUser) -> None:
    auth_service.revoke_api_token(session, token_id, actor=user)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)
    display_name: str = Field(default="", max_length=200)
    is_admin: bool = Field(default=False, description="a site administrator")


class UserActive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool = Field(description="false: the account can no longer sign in or use tokens")


def _user(user: object) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SessionDep, admin: SiteAdmin) -> UserPublic:
    """Site administrators: create an account (add it to projects as a member afterwards)."""
    user = auth_service.create_user(
        session,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        is_admin=body.is_admin,
        actor=admin,
    )
    return _user(user)


@router.put("/users/{user_id}/active", response_model=UserPublic)
def set_user_active(
    user_id: Id, body: UserActive, session: SessionDep, admin: SiteAdmin
) -> UserPublic:
    """Site administrators: deactivate (or reactivate) an account; its sessions end."""
    return _user(auth_service.set_user_active(session, user_id, body.active, actor=admin))
