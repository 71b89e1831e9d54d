"""JWT bearer tokens (RS256/ES256), verified with JWT_PUBLIC_KEY; the role is the `role` claim."""

from __future__ import annotations

import jwt

from billing.auth.keys import Principal
from billing.auth.permissions import Role


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def verify_jwt(
    token: str, *, public_key: str, audience: str | None, issuer: str | None
) -> Principal | None:
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=["RS256", "ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "sub"]},
        )
        role = Role(claims.get("role", ""))
    except (jwt.PyJWTError, ValueError):
        return None
    return Principal(kind="jwt", id=str(claims["sub"]), role=role, name=str(claims["sub"]))
