"""One libtorrent peer (Debian's python3-libtorrent) for otter's end-to-end tests.

Usage: /usr/bin/python3 lt_peer.py TORRENT SAVE_DIR LISTEN_INTERFACES SECONDS

Seeds when the file is already complete in SAVE_DIR (libtorrent checks it against the piece
hashes first), downloads it otherwise; either way it announces to the torrent's tracker and
prints "seeding" once it has the whole file, written out (the test reads it then). Peers can
find it only through that tracker: DHT, local service discovery, UPnP and NAT-PMP are off, and
the session starts without the default plugins, so there is no ut_pex (nor ut_metadata). Every tracker reply, tracker error
and state change is printed as one line on stdout, for the test to wait on and to show when it
fails. Exits by itself after SECONDS, so a lost test cannot leave it running.
"""
import sys
import time

import libtorrent as lt


def main() -> None:
    torrent_path, save_dir, listen, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    category = lt.alert.category_t
    settings = {
        "listen_interfaces": listen,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # aria2 and transmission speak TCP; uTP would only add a second path to debug.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Both clients share one loopback address, and the tests must not depend on chance.
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "alert_mask": category.error_notification
        | category.status_notification
        | category.tracker_notification
        | category.connect_notification
        | category.peer_notification
        | category.storage_notification,
    }
    session = lt.session(settings, 0)  # flags 0: no default plugins, hence no ut_pex
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent_path)
    params.save_path = save_dir
    handle = session.add_torrent(params)

    deadline = time.monotonic() + seconds
    flushing = False
    while time.monotonic() < deadline:
        session.wait_for_alert(200)
        for alert in session.pop_alerts():
            print(f"alert {type(alert).__name__}: {alert.message()}", flush=True)
            # Every piece checked does not mean every block written: say so once they are.
            if isinstance(alert, lt.cache_flushed_alert):
                print("seeding", flush=True)
        if handle.status().is_seeding and not flushing:
            flushing = True
            handle.flush_cache()
    print("deadline reached", flush=True)


if __name__ == "__main__":
    main()
