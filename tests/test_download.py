"""Safe downloads: the URL policy, and fetching through yt-dlp from a local server.

Everything runs against 127.0.0.1 (allow-listed per test) or a fake resolver;
nothing touches the internet.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.local_http import MediaServer, local_settings, tiny_video
from workers.download import UrlPolicy, address_problem, check_url, fetch_ref, fetch_video
from workers.download.fetch import refuse_by_metadata
from workers.download.ytdl import RefusedRequest, open_ytdl, ytdl_params
from workers.errors import BadVideo, DownloadError, TrackerError, TransientDownloadError, UnsafeURL
from workers.settings import Settings
from workers.video_ref import VideoRef

FAKE_DNS = {
    "public.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "internal.example": ["10.20.30.40"],
    "mixed.example": ["93.184.215.14", "127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
}


def fake_resolver(host: str) -> list[str]:
    if host not in FAKE_DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return FAKE_DNS[host]


def policy(*allow: str) -> UrlPolicy:
    return UrlPolicy.from_allow_list(allow, resolver=fake_resolver)


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return local_settings(tmp_path)


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    tiny_video(root / "short.mp4", seconds=2)
    tiny_video(root / "long.mp4", seconds=8)
    tiny_video(root / "évil name; rm -rf ~ & ..%2F.mp4", seconds=1)
    (root / "notvideo.mp4").write_bytes(b"this is not a video at all" * 10)
    with MediaServer(root, slow_seconds=2.0) as srv:
        yield srv


# --- the policy -------------------------------------------------------------

@pytest.mark.parametrize(
    "url, why",
    [
        ("http://10.0.0.1/a.mp4", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/", "metadata"),
        ("http://localhost/a.mp4", "loopback"),
        ("http://127.0.0.1:8080/a.mp4", "loopback"),
        ("http://[::1]/a.mp4", "loopback"),
        ("http://[::ffff:127.0.0.1]/a.mp4", "loopback"),
        ("http://0.0.0.0/a.mp4", "unspecified"),
        ("http://2130706433/a.mp4", "loopback"),  # 127.0.0.1 as one decimal number
        ("http://192.168.1.1/", "private"),
        ("http://100.64.0.1/", "shared"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved|private"),
        ("http://169.254.10.10/", "link-local"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/a.mp4", "only http and https"),
        ("data:video/mp4;base64,AAAA", "only http and https"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "only http and https"),
        ("//example.com/a.mp4", "only http and https"),
        ("http:///a.mp4", "no host"),
    ],
)
def test_unsafe_urls_refused_by_default(url, why):
    with pytest.raises(UnsafeURL, match=why):
        check_url(url)


def test_hostnames_judged_by_every_address_they_resolve_to():
    p = policy()
    assert p.check("https://public.example/v.mp4")
    with pytest.raises(UnsafeURL, match="resolves to 10.20.30.40, which is private"):
        p.check("https://internal.example/v.mp4")
    with pytest.raises(UnsafeURL, match="127.0.0.1"):
        p.check("https://mixed.example/v.mp4")  # one bad address is enough
    with pytest.raises(UnsafeURL, match="metadata"):
        p.check("http://metadata.example/")
    with pytest.raises(TransientDownloadError, match="cannot resolve"):  # DNS failures are retried, as other network errors
        p.check("https://nowhere.example/")


def test_a_dns_failure_is_transient_however_it_surfaces():
    """Through the address policy (``gaierror``, any code) or as yt-dlp's message: retried."""
    from workers.download.ytdl import classify_error

    for code in (socket.EAI_AGAIN, socket.EAI_NONAME, socket.EAI_FAIL):
        p = UrlPolicy.from_allow_list((), resolver=lambda _host, code=code: (_ for _ in ()).throw(socket.gaierror(code, "dns")))
        with pytest.raises(TransientDownloadError, match="cannot resolve host 'tiktok.example'"):
            p.check("https://tiktok.example/v.mp4")
    message = "ERROR: [TikTok] 1: Unable to download webpage: <urlopen error [Errno -2] Name or service not known>"
    assert isinstance(classify_error(Exception(message), "https://tiktok.example/v"), TransientDownloadError)


@pytest.mark.parametrize(
    "url, allow",
    [
        ("http://10.0.0.1/a.mp4", "10.0.0.1"),
        ("http://10.0.0.1/a.mp4", "10.0.0.0/8"),
        ("http://169.254.169.254/latest/", "169.254.169.254"),
        ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254"),
        ("http://localhost/a.mp4", "localhost"),
        ("http://LOCALHOST./a.mp4", "localhost"),
        ("http://127.0.0.1:8080/a.mp4", "127.0.0.1"),
        ("https://internal.example/v.mp4", "internal.example"),
        ("https://internal.example/v.mp4", "10.20.30.0/24"),
    ],
)
def test_allow_listed_hosts_accepted(url, allow):
    assert policy(allow).check(url) == url


def test_allow_list_never_opens_other_schemes_or_other_hosts():
    p = policy("127.0.0.1", "localhost")
    with pytest.raises(UnsafeURL):
        p.check("file:///etc/passwd")
    with pytest.raises(UnsafeURL):
        p.check("http://10.0.0.1/")
    with pytest.raises(UnsafeURL):
        p.check("http://127.0.0.2/")


def test_address_problem_names_the_reason():
    import ipaddress

    assert address_problem(ipaddress.ip_address("8.8.8.8")) is None
    assert address_problem(ipaddress.ip_address("2002:7f00:1::")) .startswith("loopback")  # 6to4 of 127.0.0.1
    assert address_problem(ipaddress.ip_address("fe80::1")) == "link-local"


def test_allow_hosts_from_environment(monkeypatch):
    monkeypatch.setenv("TT_ALLOW_HOSTS", "127.0.0.1, 10.0.0.0/8")
    assert Settings().allow_hosts == ["127.0.0.1", "10.0.0.0/8"]
    monkeypatch.setenv("TT_ALLOW_HOSTS", '["media.internal"]')
    assert Settings().allow_hosts == ["media.internal"]


# --- fetching ---------------------------------------------------------------

def test_fetch_video_from_local_server(server, settings, tmp_path):
    out = tmp_path / "media"
    fetched = fetch_video(server.url("/short.mp4"), out, settings)
    assert fetched.path.parent == out and fetched.path.suffix == ".mp4"
    assert len(fetched.path.stem) == 32 and fetched.path.stem.isalnum()
    assert fetched.size == (server.root / "short.mp4").stat().st_size
    assert fetched.duration == pytest.approx(2.0, abs=0.3)
    assert fetched.attempts == 1
    assert fetched.ref.url == server.url("/short.mp4")
    assert [p.name for p in out.iterdir()] == [fetched.path.name]  # no .part or info files left


def test_scraped_names_never_become_paths(server, settings, tmp_path):
    out = tmp_path / "media"
    url = server.url("/%C3%A9vil%20name%3B%20rm%20-rf%20~%20%26%20..%252F.mp4")
    fetched = fetch_video(url, out, settings, stem="video_42")
    assert fetched.path == out / "video_42.mp4"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and "served" not in p.parts) == ["video_42.mp4"]
    with pytest.raises(ValueError):
        fetch_video(url, out, settings, stem="../escape")


def test_localhost_refused_without_allow_list(server, tmp_path):
    strict = Settings(data_dir=tmp_path / "data", download_retries=0)
    with pytest.raises(UnsafeURL, match="loopback"):
        fetch_video(server.url("/short.mp4"), tmp_path / "media", strict)
    assert server.hits == []  # refused before any request


def test_redirect_to_unsafe_address_refused(server, settings, tmp_path):
    target = "http://169.254.169.254/latest/meta-data/iam/"
    with pytest.raises(UnsafeURL, match="metadata"):
        fetch_video(server.url(f"/redirect?to={target}"), tmp_path / "media", settings)
    assert not list((tmp_path / "media").iterdir())


@pytest.mark.parametrize("legacy_handler", [False, True], ids=["requests", "urllib"])
def test_every_redirect_hop_checked_before_it_is_followed(tmp_path, legacy_handler):
    """Reached as 'localhost' (allowed by name), redirecting to 127.0.0.1 (not allowed): never requested."""
    tiny_video(tmp_path / "a" / "x.mp4")
    with MediaServer(tmp_path / "a") as first, MediaServer(tmp_path / "a") as second:
        settings = Settings(data_dir=tmp_path / "data", allow_hosts=["localhost"], download_retries=0)
        extra = {"compat_opts": {"prefer-legacy-http-handler"}} if legacy_handler else {}
        start = f"http://localhost:{first.httpd.server_address[1]}/redirect?to={second.url('/x.mp4')}"
        with open_ytdl(settings, **extra) as ydl:
            with pytest.raises(RefusedRequest, match="loopback"):
                ydl.urlopen(start)
            assert ydl.refused and "127.0.0.1" in str(ydl.refused[0])
        assert first.hits == ["/redirect"]
        assert second.hits == []


def test_404_fails_with_reason(server, settings, tmp_path):
    with pytest.raises(DownloadError, match="404") as err:
        fetch_video(server.url("/missing.mp4"), tmp_path / "media", settings)
    assert not isinstance(err.value, TransientDownloadError)
    assert server.hits.count("/missing.mp4") == 1  # permanent: not retried


def test_timeout_retried_then_fails(server, settings, tmp_path):
    started = time.monotonic()
    with pytest.raises(TransientDownloadError, match="gave up after 3 attempts") as err:
        fetch_video(server.url("/slow/clip.mp4"), tmp_path / "media", settings)
    assert "timed out" in str(err.value).lower()
    assert server.hits.count("/slow/clip.mp4") == 3  # 1 try + download_retries (2)
    assert time.monotonic() - started < 15


def test_slow_loris_server_stopped_at_the_deadline_with_the_reason(server, settings, tmp_path):
    """A byte every 0.2 s never trips the socket timeout nor, often enough, the progress hook:
    the per-attempt wall-clock deadline stops it, and for good (retrying would wait as long again)."""
    slow = settings.model_copy(update={"max_download_seconds": 2.0})
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"longer than 2 s \(max_download_seconds\)") as caught:
        fetch_video(server.url("/trickle/clip.mp4"), tmp_path / "media", slow)
    elapsed = time.monotonic() - started
    assert not isinstance(caught.value, TransientDownloadError)
    assert elapsed < 2.0 + 20  # the server would have trickled for 60 s
    assert server.hits.count("/trickle/clip.mp4") >= 1 and list((tmp_path / "media").glob("*")) == []


def test_deadline_raises_in_the_thread_that_runs_the_block_and_only_once_it_is_over():
    from workers.download.deadline import DeadlinePassed, deadline

    with deadline(5):
        pass  # finished in time: nothing raised later either
    time.sleep(0.1)
    caught = []

    def busy():
        try:
            with deadline(0.2):
                while True:
                    try:
                        time.sleep(0.05)
                    except Exception:  # noqa: BLE001 - a library that swallows errors cannot keep it
                        pass
        except DeadlinePassed:
            caught.append(True)

    worker = threading.Thread(target=busy)
    worker.start()
    worker.join(10)
    assert caught == [True] and not worker.is_alive()


def test_oversize_refused_with_reason_from_content_length(server, settings, tmp_path):
    small = settings.model_copy(update={"max_download_mb": 0.0005})  # 524 bytes
    with pytest.raises(DownloadError, match="max_download_mb") as err:
        fetch_video(server.url("/short.mp4"), tmp_path / "media", small)
    assert "announces" in str(err.value)
    assert not list((tmp_path / "media").iterdir())


def test_oversize_stopped_while_streaming_without_content_length(server, settings, tmp_path):
    small = settings.model_copy(update={"max_download_mb": 0.5})
    with pytest.raises(DownloadError, match="passed 0.5 MB"):
        fetch_video(server.url("/chunked/big.mp4"), tmp_path / "media", small)
    assert not list((tmp_path / "media").iterdir())


def test_overlong_refused_with_reason(server, settings, tmp_path):
    short_limit = settings.model_copy(update={"max_video_seconds": 3})
    with pytest.raises(DownloadError, match=r"8 s long, over the 3 s limit \(max_video_seconds\)"):
        fetch_video(server.url("/long.mp4"), tmp_path / "media", short_limit)
    assert not list((tmp_path / "media").iterdir())
    assert fetch_video(server.url("/short.mp4"), tmp_path / "media", short_limit).duration < 3


def test_not_a_video_is_refused(server, settings, tmp_path):
    with pytest.raises(TrackerError) as err:
        fetch_video(server.url("/notvideo.mp4"), tmp_path / "media", settings)
    assert isinstance(err.value, (BadVideo, DownloadError))
    assert not list((tmp_path / "media").iterdir())


@pytest.mark.parametrize(
    "info, match",
    [
        ({"_type": "video", "duration": 601, "url": "https://public.example/v.mp4"}, "max_video_seconds"),
        ({"_type": "video", "filesize": 300 * 2**20, "url": "https://public.example/v.mp4"}, "max_download_mb"),
        ({"_type": "video", "requested_formats": [{"filesize_approx": 150 * 2**20, "url": "https://public.example/v"},
                                                  {"filesize": 60 * 2**20, "url": "https://public.example/a"}]},
         "210.0 MB"),
        ({"_type": "playlist", "entries": []}, "playlist"),
        ({"_type": "video", "is_live": True}, "live"),
        ({"_type": "video", "url": "https://internal.example/v.mp4"}, "private"),
        ({"_type": "video", "url": "file:///etc/passwd"}, "scheme"),
    ],
)
def test_metadata_refusals_before_download(info, match, tmp_path):
    settings = Settings(data_dir=tmp_path)  # 600 s, 200 MB
    with pytest.raises(DownloadError, match=match):
        refuse_by_metadata(info, "https://public.example/page", settings, policy())


def test_settings_passed_through_to_ytdlp(tmp_path):
    cookies = tmp_path / "cookies.txt"
    settings = Settings(
        data_dir=tmp_path, proxy="socks5://127.0.0.1:9050", cookies_file=cookies, impersonate="chrome",
        download_timeout=7,
    )
    params = ytdl_params(settings)
    assert params["proxy"] == "socks5://127.0.0.1:9050"
    assert params["cookiefile"] == str(cookies)
    assert str(params["impersonate"]) == "chrome"
    assert params["socket_timeout"] == 7
    assert params["external_downloader"] == {"default": "native"}  # no ffmpeg/aria2c bypassing the checks
    plain = ytdl_params(Settings(data_dir=tmp_path))
    assert "proxy" not in plain and "cookiefile" not in plain and "impersonate" not in plain


def test_fetch_ref_prefers_media_url_and_falls_back_to_page(server, settings, tmp_path):
    ref = VideoRef(platform="tiktok", platform_id="1", url=server.url("/short.mp4"),
                   media_url=server.url("/expired.mp4"), author="someone", caption="hello #x")
    fetched = fetch_ref(ref, tmp_path / "media", settings)
    assert server.hits[:1] == ["/expired.mp4"]
    assert fetched.ref.key == "tiktok:1" and fetched.ref.author == "someone"
    assert fetched.path.is_file()
