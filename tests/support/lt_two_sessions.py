"""A seeder and a leecher as two libtorrent sessions in ONE process, for otter's end-to-end tests.

Usage: /usr/bin/python3 lt_two_sessions.py TORRENT SEED_DIR SEED_LISTEN LEECH_DIR LEECH_LISTEN SECONDS

libtorrent keeps UDP tracker connection ids in a process-wide cache keyed by the tracker's
address, so the leecher session announces with the id the seeder session obtained, from its own
socket (another local port). A tracker that binds ids to the sender's port refuses that announce.

The seeder session starts first; the leecher session is added once the seeder has had a tracker
reply, so the cached id exists. Peers can find each other only through the tracker (DHT, LSD,
UPnP, NAT-PMP off, no default plugins, hence no ut_pex). Every alert is printed as one line,
prefixed with the session's name; "seeder seeding" and "leecher seeding" say each one has the
whole file, written out (the test reads it then). Exits by itself after SECONDS, so a lost test cannot leave it running.
"""
import sys
import time

import libtorrent as lt


def start(torrent_path: str, save_dir: str, listen: str):
    category = lt.alert.category_t
    settings = {
        "listen_interfaces": listen,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Both sessions share one loopback address.
        "allow_multiple_connections_per_ip": True,
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
    return session, session.add_torrent(params)


def main() -> None:
    torrent, seed_dir, seed_listen, leech_dir, leech_listen = sys.argv[1:6]
    deadline = time.monotonic() + float(sys.argv[6])
    sessions = {"seeder": start(torrent, seed_dir, seed_listen)}
    flushing = set()
    seeding = set()
    seeder_replied = False
    while time.monotonic() < deadline:
        for name, (session, handle) in list(sessions.items()):
            session.wait_for_alert(50)
            for alert in session.pop_alerts():
                print(f"{name} alert {type(alert).__name__}: {alert.message()}", flush=True)
                if name == "seeder" and isinstance(alert, lt.tracker_reply_alert):
                    seeder_replied = True
                # Every piece checked does not mean every block written: say so once they are.
                if isinstance(alert, lt.cache_flushed_alert) and name not in seeding:
                    seeding.add(name)
                    print(f"{name} seeding", flush=True)
            if handle.status().is_seeding and name not in flushing:
                flushing.add(name)
                handle.flush_cache()
        if "leecher" not in sessions and seeder_replied and "seeder" in seeding:
            sessions["leecher"] = start(torrent, leech_dir, leech_listen)
            print("leecher started", flush=True)
    print("deadline reached", flush=True)


if __name__ == "__main__":
    main()
