#!/usr/bin/env python3
"""
Added network latency for the scale-out bench's simulated cluster (bench/netns.ts), where the kernel has no
netem qdisc (CONFIG_NET_SCH_NETEM unset on the development VM): pairs of TUN devices, one left in the host's
namespace and one moved into a worker's, with every IP packet read on one side written to the other after a
fixed delay. Both ends keep their real kernel TCP stacks, so the round trip, slow start and windows are what
TCP over such a link does; only the delay line itself is in user space (its CPU is measured by the bench).

Usage: netns-delay.py HOST_TUN NS_TUN [HOST_TUN NS_TUN ...]
Prints "ready" once the devices exist. Reads commands on stdin, one a line:
  rtt <ms>   from now on, delay each direction by half of <ms>  (answers "ok")
End of stdin ends the process; its TUN devices go with it.
"""
import collections
import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65536


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main() -> None:
    names = sys.argv[1:]
    if not names or len(names) % 2:
        sys.exit("usage: netns-delay.py HOST_TUN NS_TUN [HOST_TUN NS_TUN ...]")
    peer = {}
    for host, ns in zip(names[0::2], names[1::2]):
        a, b = open_tun(host), open_tun(ns)
        peer[a], peer[b] = b, a
    # One FIFO per direction: the delay is constant, so packets leave in the order they came.
    waiting = {fd: collections.deque() for fd in peer}
    one_way = 0.0
    stdin = sys.stdin.fileno()
    pending = b""
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        timeout = None
        for src, queue in waiting.items():
            while queue and queue[0][0] <= now:
                packet = queue.popleft()[1]
                try:
                    os.write(peer[src], packet)
                except OSError:
                    pass  # the device is gone or full: the packet is lost, as on a real link
            if queue:
                due = queue[0][0] - now
                timeout = due if timeout is None else min(timeout, due)
        readable, _, _ = select.select([stdin, *peer], [], [], timeout)
        for fd in readable:
            if fd == stdin:
                chunk = os.read(stdin, 4096)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    words = line.decode().split()
                    if len(words) == 2 and words[0] == "rtt":
                        one_way = float(words[1]) / 2000.0
                        print("ok", flush=True)
                    elif words:
                        print(f"error: unknown command {line.decode()!r}", flush=True)
                continue
            for _ in range(256):
                try:
                    packet = os.read(fd, MAX_PACKET)
                except BlockingIOError:
                    break
                except OSError:
                    return  # a device was taken down: the bench is tearing the cluster down
                if one_way == 0.0 and not waiting[fd]:
                    try:
                        os.write(peer[fd], packet)
                    except OSError:
                        pass
                else:
                    waiting[fd].append((time.monotonic() + one_way, packet))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
