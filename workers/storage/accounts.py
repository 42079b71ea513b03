"""The ``accounts`` table: who may log in to the review app, with which role.

Passwords go in only as argon2 hashes (``workers.accounts``); a password change bumps the
account's ``session_epoch``, which ends every session made before it.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workers.accounts import check_name, check_role, hash_password, needs_rehash, verify_password
from workers.errors import TrackerError
from workers.storage.models import Account, utcnow


def get(session: Session, name: str) -> Account | None:
    return session.scalar(select(Account).where(Account.name == name))


def any_accounts(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Account)))


def all_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.name)))


def add(session: Session, name: str, role: str, password: str) -> Account:
    check_name(name)
    check_role(role)
    if get(session, name) is not None:
        raise TrackerError(f"account {name!r} exists already (change its password: user passwd {name})")
    account = Account(name=name, role=role, password_hash=hash_password(password))
    session.add(account)
    session.flush()
    return account


def existing(session: Session, name: str) -> Account:
    account = get(session, name)
    if account is None:
        raise TrackerError(f"no account {name!r} (see: tiktok-tracker user list)")
    return account


def set_password(session: Session, name: str, password: str) -> Account:
    """A new password; every session the account had before is over."""
    account = existing(session, name)
    account.password_hash = hash_password(password)
    account.session_epoch = (account.session_epoch or 0) + 1
    account.password_changed_at = utcnow()
    session.flush()
    return account


def set_role(session: Session, name: str, role: str) -> Account:
    account = existing(session, name)
    account.role = check_role(role)
    session.flush()
    return account


def remove(session: Session, name: str) -> None:
    session.delete(existing(session, name))
    session.flush()


def authenticate(session: Session, name: str, password: str) -> Account | None:
    """The account when ``password`` is its own (rehashed if its parameters are old), else None."""
    account = get(session, name)
    if account is None or not verify_password(account.password_hash, password):
        return None
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return account
