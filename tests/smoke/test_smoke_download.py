"""Downloads: cached, resumable (HTTP Range on a .part file), checked; via a local server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from smokedata import random_trips

from mlops_env.smoke import ridetrain as rt


@pytest.fixture
def parquet_bytes(write_parquet) -> bytes:
    return write_parquet(random_trips(3000, 30, seed=4), "src.parquet").read_bytes()


def fetch(url: str, cache: Path, **kw) -> dict:
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 10.0)
    return rt.fetch(url, str(cache), **kw)


def test_download_then_cached(http_files, parquet_bytes, tmp_path):
    base, srv = http_files
    srv.files["/trip-data/green.parquet"] = parquet_bytes
    url = base + "/trip-data/green.parquet"
    first = fetch(url, tmp_path / "cache")
    assert first["cached"] is False
    assert Path(first["path"]).read_bytes() == parquet_bytes
    assert Path(first["path"]).name.startswith("green.") and first["path"].endswith(".parquet")
    assert not Path(first["path"] + ".part").exists()
    second = fetch(url, tmp_path / "cache")
    assert second["cached"] is True and second["path"] == first["path"]
    assert srv.ranges == [None]  # one request in all


def test_resumes_a_truncated_part_file_with_range(http_files, parquet_bytes, tmp_path):
    base, srv = http_files
    srv.files["/g.parquet"] = parquet_bytes
    url = base + "/g.parquet"
    cache = tmp_path / "cache"
    cache.mkdir()
    part = cache / (rt.cache_name(url) + ".part")
    part.write_bytes(parquet_bytes[:1000])  # an earlier run stopped here
    info = fetch(url, cache)
    assert srv.ranges == ["bytes=1000-"]
    assert Path(info["path"]).read_bytes() == parquet_bytes
    assert not part.exists()


def test_dropped_connection_is_retried_from_where_it_stopped(http_files, parquet_bytes, tmp_path):
    base, srv = http_files
    srv.files["/g.parquet"] = parquet_bytes
    srv.cut_next = 1  # the first response stops halfway
    info = fetch(base + "/g.parquet", tmp_path / "cache", retries=2)
    half = len(parquet_bytes) // 2
    assert srv.ranges == [None, f"bytes={half}-"]
    assert Path(info["path"]).read_bytes() == parquet_bytes


def test_part_kept_for_next_run_when_retries_run_out(http_files, parquet_bytes, tmp_path):
    base, srv = http_files
    srv.files["/g.parquet"] = parquet_bytes
    srv.cut_next = 1
    url = base + "/g.parquet"
    with pytest.raises(rt.SmokeError) as info:
        fetch(url, tmp_path / "cache", retries=0)
    assert info.value.code == "download-failed" and info.value.exit_code == 1
    assert "--sample" in info.value.hint
    part = tmp_path / "cache" / (rt.cache_name(url) + ".part")
    assert part.stat().st_size == len(parquet_bytes) // 2
    fetch(url, tmp_path / "cache")  # the next run resumes
    assert srv.ranges[-1] == f"bytes={len(parquet_bytes) // 2}-"


def test_server_ignoring_range_restarts_cleanly(http_files, parquet_bytes, tmp_path):
    base, srv = http_files
    srv.files["/g.parquet"] = parquet_bytes
    srv.honour_range = False
    url = base + "/g.parquet"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / (rt.cache_name(url) + ".part")).write_bytes(b"junk" * 50)
    info = fetch(url, cache)
    assert srv.ranges == ["bytes=200-"]  # asked to resume, got the whole file (200)
    assert Path(info["path"]).read_bytes() == parquet_bytes


def test_not_parquet_is_an_integrity_error_and_not_cached(http_files, tmp_path):
    base, srv = http_files
    srv.files["/g.parquet"] = b"<html>AccessDenied</html>" * 10
    with pytest.raises(rt.SmokeError) as info:
        fetch(base + "/g.parquet", tmp_path / "cache")
    assert info.value.exit_code == 8 and info.value.code == "integrity"
    assert base + "/g.parquet" in info.value.message
    assert os.listdir(tmp_path / "cache") == []  # neither final nor .part left behind


def test_truncated_file_on_server_is_an_integrity_error(http_files, parquet_bytes, tmp_path):
    base, srv = http_files
    srv.files["/g.parquet"] = parquet_bytes[: len(parquet_bytes) - 100]
    with pytest.raises(rt.SmokeError, match="truncated or corrupt") as info:
        fetch(base + "/g.parquet", tmp_path / "cache")
    assert info.value.exit_code == 8


def test_corrupt_cached_file_is_downloaded_again(http_files, parquet_bytes, tmp_path):
    base, srv = http_files
    srv.files["/g.parquet"] = parquet_bytes
    url = base + "/g.parquet"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / rt.cache_name(url)).write_bytes(parquet_bytes[:500])
    info = fetch(url, cache)
    assert info["cached"] is False
    assert Path(info["path"]).read_bytes() == parquet_bytes


def test_http_404_is_not_found(http_files, tmp_path):
    base, _srv = http_files
    with pytest.raises(rt.SmokeError) as info:
        fetch(base + "/missing.parquet", tmp_path / "cache")
    assert info.value.exit_code == 3 and info.value.code == "not-found"


def test_unreachable_server_says_use_sample(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(rt.SmokeError) as info:
        fetch(f"http://127.0.0.1:{port}/g.parquet", tmp_path / "cache", retries=1)
    err = info.value
    assert err.code == "download-failed" and err.exit_code == 1
    assert "2 attempts" in err.message
    assert "--sample" in err.hint


def test_run_with_urls_end_to_end(http_files, write_parquet, tmp_path):
    base, srv = http_files
    srv.files["/jan.parquet"] = write_parquet(random_trips(800, 15, seed=1), "a.parquet").read_bytes()
    srv.files["/feb.parquet"] = write_parquet(random_trips(600, 15, seed=2), "b.parquet").read_bytes()
    data = rt.run(train=base + "/jan.parquet", val=base + "/feb.parquet",
                  report_dir=str(tmp_path / "report"), cache_dir=str(tmp_path / "cache"))
    assert data["synthetic"] is False
    assert data["sources"]["train"]["src"] == base + "/jan.parquet"
    assert data["sources"]["train"]["cached"] is False
    assert len(data["sources"]["val"]["sha256"]) == 64
    again = rt.run(train=base + "/jan.parquet", val=base + "/feb.parquet",
                   report_dir=str(tmp_path / "report"), cache_dir=str(tmp_path / "cache"))
    assert again["sources"]["train"]["cached"] is True
    assert again["rmse_val"] == data["rmse_val"]
    assert len(srv.ranges) == 2
