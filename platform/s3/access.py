"""Who may do what in the data's bucket: one table, `GRANTS`, read by the local S3 server
(serve.py writes SeaweedFS's identities from it; the image copies this file beside serve.py)
and by `make iam-policies`, which writes each identity's AWS IAM policy from it. So the local
stack and a cloud account grant every job the same actions on the same prefixes.

Run as a script it writes one IAM policy per identity: ``python3 platform/s3/access.py
--bucket ad-data --out docs/s3-policies`` (the defaults; tests/unit/test_s3_access.py holds
the committed files to this table).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# A grant: SeaweedFS actions on a prefix of the bucket ("" is the whole bucket). The prefixes
# mirror adpipe.windows (serve.py's image carries no job code; tests/unit/test_one_home.py
# holds them to it). Every job may list the whole bucket: `Bucket.check` lists it with no
# prefix, one key, to prove the identity works before a job starts.
Grant = tuple[tuple[str, ...], str]
GRANTS: dict[str, list[Grant]] = {
    "operator": [(("Read", "Write", "List", "Tagging"), "")],
    "extract": [(("Read", "Write"), "backup/"), (("List",), "")],
    "load": [(("Read",), "backup/"), (("Read", "Write"), "quarantine/"), (("List",), "")],
    "archive": [
        (("Read", "Write"), "archive/"),
        # `archive set-aside` moves an object it cannot vouch for here
        (("Read", "Write"), "set-aside/"),
        (("List",), ""),
    ],
    "reconcile": [(("Read", "List"), "")],
    # `make query` reads the archive and nothing else
    "query": [(("Read",), "archive/"), (("List",), "")],
}

# What each SeaweedFS action lets an identity do, as IAM actions. From SeaweedFS's S3 router
# (weed/s3api/s3api_server.go, which names the action each request needs, and
# Identity.CanDo in auth_credentials.go, which matches "Action:bucket" exactly and
# "Action:bucket/prefix/*" as a pattern over bucket/key):
# - Read: GET and HEAD of an object (s3:GetObject); SeaweedFS's Read also answers an
#   object's tags, a multipart upload's parts and, unscoped, the bucket's own settings
#   (location, versioning, policy), which no job asks for, so IAM grants none of them.
# - Write: PUT, copy onto, multipart upload and complete (s3:PutObject), abort
#   (s3:AbortMultipartUpload), DELETE and the multi-object delete (s3:DeleteObject): a
#   SeaweedFS Write always includes deleting, so the IAM policy grants it too.
# - List: ListObjects v1 and v2 (s3:ListBucket, a bucket action: a prefix-scoped List
#   becomes an s3:prefix condition, as SeaweedFS promotes ?prefix= into the key it matches).
# - Tagging: put and delete an object's tags (s3:PutObjectTagging, s3:DeleteObjectTagging);
#   reading them is Read's in SeaweedFS and not granted on AWS.
IAM_ACTIONS: dict[str, tuple[str, ...]] = {
    "Read": ("s3:GetObject",),
    "Write": ("s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"),
    "List": ("s3:ListBucket",),
    "Tagging": ("s3:PutObjectTagging", "s3:DeleteObjectTagging"),
}
LISTING = frozenset(IAM_ACTIONS["List"])  # the bucket's actions; the rest act on objects
POLICY_VERSION = "2012-10-17"  # the IAM policy language's current version


def environment_prefix(name: str) -> str:
    """The prefix of the identity's key pair in .env: the operator's is AWS_ACCESS_KEY_ID,
    each job's its own (LOAD_AWS_ACCESS_KEY_ID)."""
    return "" if name == "operator" else f"{name.upper()}_"


def seaweedfs_actions(name: str, buckets: list[str]) -> list[str]:
    """The identity's actions as SeaweedFS's identities.json lists them, in every bucket:
    ``Read:ad-data`` for the whole bucket, ``Read:ad-data/backup/*`` for a prefix."""
    return [
        f"{action}:{bucket}/{prefix}*" if prefix else f"{action}:{bucket}"
        for bucket in buckets
        for actions, prefix in GRANTS[name]
        for action in actions
    ]


def iam_policy(name: str, buckets: list[str]) -> dict:
    """The identity's IAM policy: one statement per grant and bucket, each naming only the
    objects under its prefix (or the bucket, for s3:ListBucket, with an s3:prefix condition
    when the grant has a prefix)."""
    statements = []
    for bucket in buckets:
        for actions, prefix in GRANTS[name]:
            on_objects = sorted({a for action in actions for a in IAM_ACTIONS[action]} - LISTING)
            if on_objects:
                statements.append(
                    {
                        "Effect": "Allow",
                        "Action": on_objects,
                        "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
                    }
                )
            if "List" in actions:
                listing: dict = {
                    "Effect": "Allow",
                    "Action": sorted(LISTING),
                    "Resource": f"arn:aws:s3:::{bucket}",
                }
                if prefix:
                    listing["Condition"] = {"StringLike": {"s3:prefix": f"{prefix}*"}}
                statements.append(listing)
    named = [
        {"Sid": f"{name.capitalize()}{number}", **statement}
        for number, statement in enumerate(statements, 1)
    ]
    return {"Version": POLICY_VERSION, "Statement": named}


def write_policies(bucket: str, out: Path) -> list[Path]:
    """One ``<identity>.json`` per identity in ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in GRANTS:
        path = out / f"{name}.json"
        path.write_text(json.dumps(iam_policy(name, [bucket]), indent=2) + "\n")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write each S3 identity's AWS IAM policy (least privilege, from GRANTS)."
    )
    parser.add_argument("--bucket", default="ad-data", help="the data's bucket (S3_BUCKET)")
    parser.add_argument("--out", type=Path, default=Path("docs/s3-policies"), help="folder")
    args = parser.parse_args()
    for path in write_policies(args.bucket, args.out):
        print(f"iam-policies: wrote {path}")


if __name__ == "__main__":
    main()
