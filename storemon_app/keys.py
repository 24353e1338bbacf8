"""./storemon keys: owner keys, i.e. API keys bound to a set of store ids (issue 13).

  keys create --owner NAME --stores ID,ID | --stores-file FILE [--api-gateway]
  keys list
  keys revoke KEY_ID_OR_PREFIX

The secret is printed once, at creation; the table keeps only its SHA-256. On a
deployed stage ``--api-gateway`` also registers the secret as an API Gateway key in
the stage's usage plan (``storemon-<stage>``), since the gateway refuses any request
whose ``x-api-key`` is not in a usage plan; ``revoke`` then deletes that key too.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable, Optional

from storemon_app.errors import CommandError

#: Shortest prefix ``revoke`` accepts: a key id is 12 hex characters.
MIN_PREFIX = 4


def read_store_ids(text: Optional[str], path: Optional[Path]) -> list[str]:
    """The ids of ``--stores`` or ``--stores-file`` (one or more per line, comma-separated;
    blank lines and ``#`` comments skipped), checked by the store-id rules; an error names
    the file, line and reason of every malformed id."""
    from chalicelib.core.parsing import InvalidField, parse_store_id
    from chalicelib.owner_keys import MAX_SCOPE_STORES

    if path is not None:
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        lines = [(f"{path}:{number}", line) for number, line in
                 enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)]
    else:
        lines = [("--stores", text or "")]
    ids, errors = set(), []
    for where, line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for value in line.split(","):
            try:
                ids.add(parse_store_id(value))
            except InvalidField as error:
                errors.append(f"{where}: {error}")
    if errors:
        raise CommandError(f"{len(errors)} malformed store id(s): " + "; ".join(errors[:10]))
    if not ids:
        raise CommandError("name at least one store id")
    if len(ids) > MAX_SCOPE_STORES:
        raise CommandError(f"{len(ids):,} stores; a key may name at most {MAX_SCOPE_STORES:,}")
    return sorted(ids)


def _gateway() -> Any:
    import boto3

    return boto3.client("apigateway", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def register_gateway_key(stage: str, name: str, secret: str) -> str:
    """Create an API Gateway key with ``secret`` as its value in the usage plan
    ``storemon-<stage>`` (infra/resources.json); its id."""

    gateway = _gateway()
    plans = [plan for page in gateway.get_paginator("get_usage_plans").paginate()
             for plan in page["items"] if plan["name"] == f"storemon-{stage}"]
    if len(plans) != 1:
        raise CommandError(f"found {len(plans)} usage plans named storemon-{stage}; is the stack deployed?")
    key = gateway.create_api_key(name=name, value=secret, enabled=True,
                                 description="storemon owner key (./storemon keys)")
    gateway.create_usage_plan_key(usagePlanId=plans[0]["id"], keyId=key["id"], keyType="API_KEY")
    return str(key["id"])


def cmd_keys_create(args: argparse.Namespace) -> int:
    from chalicelib.owner_keys import new_secret
    from chalicelib.storage.owner_keys import KEY_ID_LENGTH, OwnerKeyRepository, key_hash

    stores = read_store_ids(args.stores, Path(args.stores_file) if args.stores_file else None)
    owner = args.owner.strip()
    if not owner or len(owner) > 200 or not owner.isprintable():
        raise CommandError("--owner must be a printable name of at most 200 characters")
    args.connect(args)
    secret = new_secret()
    key_id = key_hash(secret)[:KEY_ID_LENGTH]
    gateway_key_id = None
    if args.api_gateway:
        gateway_key_id = register_gateway_key(args.stage, f"storemon-{args.stage}-owner-{key_id}", secret)
    try:
        record = OwnerKeyRepository().add(secret, owner, stores, gateway_key_id=gateway_key_id)
    except Exception:
        if gateway_key_id:
            _gateway().delete_api_key(apiKey=gateway_key_id)
        raise
    registered = (f"; API Gateway key {gateway_key_id} in usage plan storemon-{args.stage}"
                  if gateway_key_id else "")
    print(f"key {record.key_id} for {owner}: {len(stores):,} store(s){registered}")
    print(f"secret (shown once, send it as x-api-key): {secret}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from chalicelib.storage.owner_keys import OwnerKeyRepository

    args.connect(args)
    keys = OwnerKeyRepository().all()
    if not keys:
        print("no owner keys: every accepted key sees the whole fleet")
        return 0
    print(f"{'key id':12}  {'created (UTC)':19}  {'revoked (UTC)':19}  {'stores':>6}  owner: first stores")
    for key in keys:
        stores = sorted(key.store_ids or ())
        revoked = f"{key.revoked_at:%Y-%m-%d %H:%M:%S}" if key.revoked else "-"
        print(f"{key.key_id:12}  {key.created_at:%Y-%m-%d %H:%M:%S}  {revoked:19}  {len(stores):>6}  "
              f"{key.owner}: {', '.join(stores[:5])}{' …' if len(stores) > 5 else ''}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from chalicelib.storage.owner_keys import OwnerKeyRepository

    prefix = args.key_id.strip().lower()
    if len(prefix) < MIN_PREFIX:
        raise CommandError(f"give at least {MIN_PREFIX} characters of the key id (./storemon keys list)")
    args.connect(args)
    repository = OwnerKeyRepository()
    found = repository.find(prefix)
    if len(found) != 1:
        names = ", ".join(f"{key.key_id} ({key.owner})" for key in found)
        raise CommandError(f"{len(found)} keys start with {prefix!r}" + (f": {names}; give more characters"
                                                                         if found else ""))
    key = found[0]
    if not repository.revoke(key):
        print(f"key {key.key_id} ({key.owner}) was already revoked")
        return 0
    if key.gateway_key_id:
        _gateway().delete_api_key(apiKey=key.gateway_key_id)
    print(f"revoked key {key.key_id} ({key.owner}); requests with it now get 401"
          + (f"; API Gateway key {key.gateway_key_id} deleted" if key.gateway_key_id else ""))
    return 0


def register_commands(commands: Any, connect: Callable[[argparse.Namespace], None]) -> None:
    """The ``keys`` command; ``connect`` points the process at ``--endpoint`` (the CLI's own,
    passed in so that this module does not import the CLI that imports it)."""
    keys = commands.add_parser("keys", help="owner keys: API keys that see only a set of stores")
    keys.set_defaults(connect=connect)
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key bound to store ids; prints its secret once")
    create.add_argument("--owner", required=True, help="who the key is for (shown by list)")
    stores = create.add_mutually_exclusive_group(required=True)
    stores.add_argument("--stores", help="store ids, comma-separated")
    stores.add_argument("--stores-file", metavar="FILE", help="store ids, one a line (or comma-separated)")
    create.add_argument("--api-gateway", action="store_true",
                        help="also register the secret as an API Gateway key in the stage's usage plan "
                             "(deployed stages: the gateway refuses keys outside it)")
    create.set_defaults(func=cmd_keys_create)
    listing = actions.add_parser("list", help="every key: id, owner, stores, created, revoked (no secrets)")
    listing.set_defaults(func=cmd_keys_list)
    revoke = actions.add_parser("revoke", help="refuse a key from now on (401)")
    revoke.add_argument("key_id", metavar="KEY_ID_OR_PREFIX", help="the key id of `keys list`, or its start")
    revoke.set_defaults(func=cmd_keys_revoke)
