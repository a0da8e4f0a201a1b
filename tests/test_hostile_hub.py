"""A hostile or broken Hub (or mirror): each misbehaviour is refused with a precise error, nothing lands outside the cache.

Tree listings with escaping paths (`../x`, `/etc/x`, `a\\..\\b`, `//`), duplicate paths, symlink or submodule
entries, malformed LFS metadata, an endless pagination loop and a listing of 100k entries; file bytes that do not
match the listing's `oid` / LFS sha256; an `X-Repo-Commit` that differs from the requested commit;
`kernel-status.toml` redirect loops, chains, garbage, and redirects to a missing repo. Set
`KERNEL_LOCK_COUNTS=/path/file.jsonl` to collect the number of hostile cases refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from kernel_lock.cache.verify import check_variant
from kernel_lock.core.cache_layout import hub_cache_dir, variant_dir
from kernel_lock.core.hashing import variant_hash
from kernel_lock.core.lockfile import read_lock
from kernel_lock.errors import HubError
from kernel_lock.hub.client import MAX_ENTRIES, MAX_PAGES, TreeEntry
from kernel_lock.lock.hashes import list_variants
from kernel_lock.testing import Fault, LocalHub, repo_files
from kernel_lock.testing.fixtures import CPU_VARIANT

RELU = '"kernels-community/relu" = 1'
COUNTS: Counter[str] = Counter()


def refused() -> None:
    COUNTS["hostile_cases_refused"] += 1


def listing(hub: LocalHub, repo_id: str, commit: str) -> list[dict]:
    """The hub's own recursive listing of `build/` at a commit (raw JSON entries, every page)."""
    url = f"{hub.url}/api/kernels/{repo_id}/tree/{commit}/build?recursive=true"
    entries: list[dict] = []
    while url:
        with urllib.request.urlopen(url) as response:
            entries.extend(json.load(response))
            link = response.headers.get("Link") or ""
        url = link[1 : link.index(">")] if 'rel="next"' in link else ""
    return entries


def tree_outside_cache(root: Path) -> dict[str, bytes]:
    """Every file under `root` except the Hugging Face cache (path -> bytes), to prove nothing else was written."""
    cache = hub_cache_dir().resolve()
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath).resolve() == cache:
            dirnames[:] = []
            continue
        for name in filenames:
            path = Path(dirpath, name)
            found[str(path.relative_to(root))] = path.read_bytes() if not path.is_symlink() else b"<link>"
    return found


def blobs_are_honest() -> None:
    """Every blob in the cache hashes to its own name (git blob sha1 or LFS sha256): no wrong bytes were kept."""
    for blob in hub_cache_dir().glob("kernels--*/blobs/*"):
        data = blob.read_bytes()
        name = blob.name
        actual = (
            hashlib.sha256(data).hexdigest()
            if len(name) == 64
            else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        )
        assert actual == name, f"blob {blob} holds bytes that do not match its name"


@pytest.fixture
def world(hub_env, tmp_path, make_project, monkeypatch) -> Path:
    """A project locked for relu v1, run from a working directory of its own; returns the project root."""
    root = make_project(RELU)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return root


def assert_refused(run, code: int, *says: str) -> None:
    assert run.exit_code == code, (run.exit_code, run.stdout, run.stderr)
    assert any(line.startswith("error: ") for line in run.stderr.splitlines()), run.stderr
    assert "Traceback" not in run.stderr and "error: unexpected" not in run.stderr, run.stderr
    for text in says:
        assert text in run.stderr, run.stderr
    refused()


# -- hostile listings at lock time ---------------------------------------------------------------------------

HOSTILE_PATHS = [
    f"build/{CPU_VARIANT}/../../../../x",
    "build/../x",
    "build/..",
    f"build/{CPU_VARIANT}/a\\..\\..\\b",
    f"build/{CPU_VARIANT}//etc/x",
    f"build/{CPU_VARIANT}/./x",
    f"build/{CPU_VARIANT}/x\x00.py",
    "build//etc/x",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_lock_refuses_escaping_paths_in_a_listing(
    hub_env, hub_fixtures, world, cli, tmp_path, path: str
) -> None:
    entries = listing(hub_env, "kernels-community/relu", hub_fixtures.relu_v1)
    entries.append({"type": "file", "path": path, "oid": "1" * 40, "size": 3})
    hub_fixtures.relu.override_tree(hub_fixtures.relu_v1, entries)
    before = tree_outside_cache(tmp_path)
    run = cli("lock", "--project", str(world))
    assert_refused(run, 3, "kernels-community/relu", repr(path), "unsafe")
    assert not (world / "kernels.lock").exists()
    assert tree_outside_cache(tmp_path) == before
    assert not any("/resolve/" in r.path and "/build/" in r.path for r in hub_env.requests), (
        "nothing was downloaded"
    )


@pytest.mark.parametrize(
    "path", ["/etc/x", "../x", "build\\torch-cpu\\x", "C:/x", "build/torch-cpu/../../x", "/build/torch-cpu/x"]
)
def test_variant_hashes_refuse_paths_a_local_hub_cannot_list(path: str) -> None:
    # The local Hub only lists paths under the requested folder; a hostile mirror could list anything.
    entries = [TreeEntry(type="file", path=path, oid="2" * 40, size=1)]
    with pytest.raises(HubError, match="unsafe or unexpected path"):
        list_variants("org/name", "c" * 40, entries)
    refused()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"type": "file", "path": f"build/{CPU_VARIANT}/layers.py", "oid": "3" * 40, "size": 9}, "twice"),
        (
            {"type": "symlink", "path": f"build/{CPU_VARIANT}/evil.py", "oid": "4" * 40, "size": 9},
            "as a 'symlink'",
        ),
        (
            {"type": "submodule", "path": f"build/{CPU_VARIANT}/sub", "oid": "5" * 40, "size": 0},
            "as a 'submodule'",
        ),
        (
            {
                "type": "file",
                "path": f"build/{CPU_VARIANT}/x.so",
                "oid": "6" * 40,
                "size": 1,
                "lfs": {"oid": "../x", "size": 1},
            },
            "malformed tree listing",
        ),
        (
            {"type": "file", "path": f"build/{CPU_VARIANT}/y.py", "oid": "7" * 40, "size": -1},
            "malformed tree listing",
        ),
        (
            {"type": "file", "path": f"build/{CPU_VARIANT}/z.py", "oid": 8, "size": 1},
            "malformed tree listing",
        ),
        (
            {"type": "file", "path": f"build/{CPU_VARIANT}/z.py", "oid": "not-a-hash", "size": 1},
            "malformed tree listing",
        ),
        ({"type": "file", "path": f"build/{CPU_VARIANT}/z.py", "size": 1}, "malformed tree listing"),
    ],
    ids=[
        "duplicate",
        "symlink",
        "submodule",
        "bad-lfs-oid",
        "negative-size",
        "oid-not-a-string",
        "oid-not-hex",
        "no-oid",
    ],
)
def test_lock_refuses_broken_listing_entries(
    hub_env, hub_fixtures, world, cli, tmp_path, extra: dict, says: str
) -> None:
    entries = [*listing(hub_env, "kernels-community/relu", hub_fixtures.relu_v1), extra]
    hub_fixtures.relu.override_tree(hub_fixtures.relu_v1, entries)
    before = tree_outside_cache(tmp_path)
    run = cli("lock", "--project", str(world))
    assert_refused(run, 3, "kernels-community/relu", says)
    assert not (world / "kernels.lock").exists()
    assert tree_outside_cache(tmp_path) == before


def test_listing_of_100k_entries_is_handled_exactly(hub_env, hub_fixtures, world, cli) -> None:
    """A huge listing (100k files in one variant, 20 pages) is within the client's bounds: it locks, exactly.

    Hash type git_lfs_concat: the listing alone gives the hash (with `sha256`, a variant without a publisher
    digest costs one request per git-stored file). Each page is asked for once: the cost is the listing's size.
    """
    entries = [{"type": "directory", "path": "build/torch-cpu", "oid": "0" * 40, "size": 0}]
    entries += [
        {
            "type": "file",
            "path": f"build/torch-cpu/d{i % 97}/f{i:06d}.py",
            "oid": hashlib.sha1(b"%d" % i).hexdigest(),
            "size": 10,
        }
        for i in range(100_000)
    ]
    assert len(entries) < MAX_ENTRIES and len(entries) / 5000 < MAX_PAGES  # so the right outcome is a lock
    hub_fixtures.relu.override_tree(hub_fixtures.relu_v1, entries)
    hub_env.tree_page_size = 5000  # a mirror picks its page size; fewer pages keep the local hub's side quick
    run = cli("lock", "--project", str(world), "--hash-type", "git_lfs_concat")
    assert run.exit_code == 0, run.stderr
    [entry] = read_lock(world / "kernels.lock").kernel
    expected = variant_hash((e["path"].removeprefix("build/torch-cpu/"), e["oid"]) for e in entries[1:])
    assert entry.variants == {"torch-cpu": expected}
    pages = [r.query.get("cursor") for r in hub_env.requests if "/tree/" in r.path]
    assert len(pages) == -(-len(entries) // 5000) and len(set(pages)) == len(pages)  # every page, each once
    COUNTS["huge_listing_entries_locked"] += 100_000


def test_pagination_loop_is_refused(hub_env, hub_fixtures, world, cli, monkeypatch) -> None:
    pages = Counter()
    real_tree = hub_env._tree

    def looping(repo, revision, path, query, host, raw_path):
        response = real_tree(
            repo, revision, path, {k: v for k, v in query.items() if k != "cursor"}, host, raw_path
        )
        pages[raw_path] += 1
        if pages[raw_path] < 60:
            response.headers["Link"] = (
                f'<http://{host}{raw_path}?recursive=true&expand=false&cursor=MA==>; rel="next"'
            )
        return response

    monkeypatch.setattr(hub_env, "_tree", looping)
    run = cli("lock", "--project", str(world))
    assert run.exit_code == 3 and "Traceback" not in run.stderr
    assert max(pages.values()) < 30, f"followed a self-referencing next link {max(pages.values())} times"
    refused()


# -- hostile listings and bytes at sync time ------------------------------------------------------------------


@pytest.fixture
def locked(hub_env, world, cli) -> Path:
    assert cli("lock", "--project", str(world)).exit_code == 0
    hub_env.clear_log()
    return world


@pytest.mark.parametrize(
    "rel",
    ["../../../../x", "../torch-cpu/__init__.py", "a\\..\\..\\b", "/etc/x", "./x", "x\x00.py", ".."],
)
def test_sync_refuses_escaping_paths_and_downloads_nothing(
    hub_env, hub_fixtures, locked, cli, tmp_path, rel: str
) -> None:
    # The lock came from an honest listing; now the Hub lists the variant with one more, escaping, path.
    entries = listing(hub_env, "kernels-community/relu", hub_fixtures.relu_v1)
    entries.append({"type": "file", "path": f"build/{CPU_VARIANT}/{rel}", "oid": "1" * 40, "size": 3})
    hub_fixtures.relu.override_tree(hub_fixtures.relu_v1, entries)
    before = tree_outside_cache(tmp_path)
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT)
    assert_refused(run, 3, "kernels-community/relu")
    assert not any("/resolve/" in r.path for r in hub_env.requests), "nothing may be downloaded"
    assert tree_outside_cache(tmp_path) == before
    relu = read_lock(locked / "kernels.lock").find("kernels-community/relu")
    assert not check_variant(relu, CPU_VARIANT).ok


def test_bytes_that_do_not_match_the_listing_are_refused_and_removed(hub_env, locked, cli, tmp_path) -> None:
    hub_env.add_fault(Fault("corrupt", match=r"/resolve/.*/__init__\.py$", count=None))
    hub_env.add_fault(Fault("corrupt", match=r"^/cdn/", count=None))
    before = tree_outside_cache(tmp_path)
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT)
    assert_refused(
        run,
        4,
        "kernels-community/relu",
        "__init__.py: content changed (expected ",
        ".abi3.so: content changed (expected ",
    )
    blobs_are_honest()
    assert tree_outside_cache(tmp_path) == before
    relu = read_lock(locked / "kernels.lock").find("kernels-community/relu")
    vdir = variant_dir(relu.repo_id, relu.commit, CPU_VARIANT)
    assert not (vdir / "__init__.py").exists() and not list(vdir.glob("*.so"))
    assert not check_variant(relu, CPU_VARIANT).ok
    COUNTS["hostile_cases_refused"] += 1  # two kinds of bad bytes (git, LFS) in one run
    hub_env.clear_faults()
    assert cli("sync", "--project", str(locked), "--variant", CPU_VARIANT).exit_code == 0
    assert cli("verify", "--project", str(locked), "--variant", CPU_VARIANT, "--full").exit_code == 0


@pytest.mark.parametrize("match", [r"/resolve/.*/layers\.py$", r"/resolve/"])
def test_answer_for_another_commit_is_refused(hub_env, locked, cli, tmp_path, match: str) -> None:
    hub_env.add_fault(Fault("wrong_commit", match=match, count=None))
    before = tree_outside_cache(tmp_path)
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT)
    assert_refused(run, 3, "kernels-community/relu", "another commit's file")
    assert tree_outside_cache(tmp_path) == before
    relu = read_lock(locked / "kernels.lock").find("kernels-community/relu")
    assert not check_variant(relu, CPU_VARIANT).ok
    wrong = [p for p in hub_cache_dir().glob("kernels--*/snapshots/" + "0" * 40 + "/**/*") if not p.is_dir()]
    assert wrong == [], f"files of the wrong commit were left in the cache: {wrong}"
    blobs_are_honest()
    hub_env.clear_faults()
    assert cli("sync", "--project", str(locked), "--variant", CPU_VARIANT).exit_code == 0
    assert cli("verify", "--project", str(locked), "--variant", CPU_VARIANT, "--full").exit_code == 0


def test_variant_with_committed_bytecode_syncs(hub_env, make_project, cli) -> None:
    files = repo_files(["torch-cpu"], name="pycky")
    files["build/torch-cpu/__pycache__/layers.cpython-311.pyc"] = b"\x00stale bytecode"
    files["build/torch-cpu/stale.pyc"] = b"\x00more"
    repo = hub_env.create_repo("kernels-community/pycky")
    commit = repo.commit(files, branch="v1")
    repo.create_branch("main", commit)
    root = make_project('"kernels-community/pycky" = 1', name="pycky")
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("sync", "--project", str(root), "--variant", "torch-cpu")
    assert run.exit_code == 0, run.stderr
    assert cli("verify", "--project", str(root), "--variant", "torch-cpu", "--full").exit_code == 0


def test_lock_with_an_escaping_variant_name_writes_nothing_outside_the_cache(
    hub_env, locked, cli, tmp_path
) -> None:
    text = (locked / "kernels.lock").read_text()
    hostile = "../../../../escaped"  # from <cache>/kernels--org--name/.kernel-lock/<commit>/ up to tmp_path
    text = text.replace(f"\n{CPU_VARIANT} = ", f'\n"{hostile}" = ')
    (locked / "kernels.lock").write_text(text)
    before = tree_outside_cache(tmp_path)
    run = cli("sync", "--frozen", "--project", str(locked), "--variant", hostile)
    created = set(tree_outside_cache(tmp_path)) - set(before)
    assert created == set(), f"sync wrote outside the cache: {sorted(created)}"
    assert run.exit_code == 2 and "Traceback" not in run.stderr
    refused()


# -- kernel-status.toml redirects -----------------------------------------------------------------------------


def redirect_repo(hub: LocalHub, repo_id: str, body: bytes) -> None:
    hub.create_repo(repo_id).commit({"kernel-status.toml": body})


def to(destination: str) -> bytes:
    return f'kind = "redirect"\ndestination = "{destination}"\n'.encode()


@pytest.mark.parametrize(
    ("repos", "says"),
    [
        (
            {
                "kernels-community/loop-a": to("kernels-community/loop-b"),
                "kernels-community/loop-b": to("kernels-community/loop-a"),
            },
            "kernels-community/loop-a -> kernels-community/loop-b -> kernels-community/loop-a",
        ),
        ({"kernels-community/loop-a": to("kernels-community/loop-a")}, "redirects in a loop"),
        (
            {
                f"kernels-community/loop-{c}": to(f"kernels-community/loop-{chr(ord(c) + 1)}")
                for c in "abcdefghijkl"
            },
            "redirects more than 8 times",
        ),
    ],
    ids=["two-repo-loop", "self-loop", "long-chain"],
)
def test_redirect_loops_and_chains_are_refused(hub_env, make_project, cli, repos: dict, says: str) -> None:
    for repo_id, body in repos.items():
        redirect_repo(hub_env, repo_id, body)
    root = make_project('"kernels-community/loop-a" = 1', name="loop")
    run = cli("lock", "--project", str(root))
    assert_refused(run, 2, "kernels-community/loop-a", says)
    assert not (root / "kernels.lock").exists()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'kind = "redirect"\ndestination = "../../etc/passwd"\n', "which is not a repo id"),
        (b'kind = "redirect"\n', "without a destination"),
        (b"kind = [unterminated\n", "malformed kernel-status.toml"),
        (b"\xff\xfe\x00garbage", "malformed kernel-status.toml"),
    ],
    ids=["escaping-destination", "no-destination", "bad-toml", "not-utf8"],
)
def test_broken_status_files_are_refused(hub_env, make_project, cli, body: bytes, says: str) -> None:
    redirect_repo(hub_env, "kernels-community/broken-status", body)
    root = make_project('"kernels-community/broken-status" = 1', name="broken")
    run = cli("lock", "--project", str(root))
    assert_refused(run, 3, "kernels-community/broken-status", says)
    assert not (root / "kernels.lock").exists()


def test_redirect_to_a_missing_repo_is_refused(hub_env, make_project, cli) -> None:
    redirect_repo(hub_env, "kernels-community/moved-away", to("kernels-community/gone"))
    root = make_project('"kernels-community/moved-away" = 1', name="moved")
    run = cli("lock", "--project", str(root))
    assert_refused(run, 2, "kernels-community/gone", "not found")
    assert not (root / "kernels.lock").exists()


def test_redirect_to_a_missing_repo_names_the_redirect(hub_env, make_project, cli) -> None:
    redirect_repo(hub_env, "kernels-community/moved-away", to("kernels-community/gone"))
    root = make_project('"kernels-community/moved-away" = 1', name="moved")
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 2
    assert "kernels-community/moved-away" in run.stderr and "redirect" in run.stderr
