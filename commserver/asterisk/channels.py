"""A pure mirror of Asterisk's live state: channels, bridges, devices and PJSIP contacts.

`AsteriskState.apply(event)` folds one typed event in; `rebuild(...)` replaces everything with
what `CoreShowChannels`, `BridgeList` and `DeviceStateList` reported after a (re)connect.
Applying an event twice, or an event older than the snapshot, leaves the same state (a
hang-up of an unknown channel is ignored, a channel seen again is updated in place), which is
what lets the manager replay events that arrived while a resync was running.
No I/O and no clock: the benchmark drives it at full speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .events import (
    AmiEvent,
    BridgeCreated,
    BridgeDestroyed,
    BridgeEntered,
    BridgeLeft,
    ChannelCreated,
    ChannelHungUp,
    ChannelRenamed,
    ChannelSnapshot,
    ChannelState,
    ContactStatusChanged,
    DeviceState,
    DeviceStateChanged,
)


@dataclass(eq=False)
class Bridge:
    """A bridge and the uniqueids of the channels in it."""

    bridge_id: str
    members: set[str] = field(default_factory=set)


class AsteriskState:
    """Channels by uniqueid, bridges by id, device states, registered contacts per AOR."""

    def __init__(self) -> None:
        self.channels: dict[str, ChannelSnapshot] = {}
        self.bridges: dict[str, Bridge] = {}
        self.devices: dict[str, DeviceState] = {}
        self.contacts: dict[str, set[str]] = {}
        self.applied = 0

    def apply(self, event: AmiEvent) -> None:
        """Fold one event into the state."""
        self.applied += 1
        if isinstance(event, ChannelCreated):
            self._upsert(event.channel)
        elif isinstance(event, ChannelHungUp):
            self._remove(event.channel.uniqueid)
        elif isinstance(event, BridgeEntered):
            bridge = self.bridges.setdefault(event.bridge_id, Bridge(event.bridge_id))
            if event.swap_uniqueid:
                bridge.members.discard(event.swap_uniqueid)
            bridge.members.add(event.channel.uniqueid)
            self._upsert(event.channel, bridge_id=event.bridge_id)
        elif isinstance(event, BridgeLeft):
            left = self.bridges.get(event.bridge_id)
            if left is not None:
                left.members.discard(event.channel.uniqueid)
            current = self.channels.get(event.channel.uniqueid)
            if current is not None and current.bridge_id == event.bridge_id:
                self.channels[current.uniqueid] = replace(current, bridge_id="")
        elif isinstance(event, BridgeCreated):
            self.bridges.setdefault(event.bridge_id, Bridge(event.bridge_id))
        elif isinstance(event, BridgeDestroyed):
            gone = self.bridges.pop(event.bridge_id, None)
            for uniqueid in gone.members if gone else ():
                current = self.channels.get(uniqueid)
                if current is not None and current.bridge_id == event.bridge_id:
                    self.channels[uniqueid] = replace(current, bridge_id="")
        elif isinstance(event, ChannelRenamed):
            current = self.channels.get(event.uniqueid)
            if current is not None:
                self.channels[event.uniqueid] = replace(current, name=event.new_name)
        elif isinstance(event, DeviceStateChanged):
            self.devices[event.device] = event.state
        elif isinstance(event, ContactStatusChanged):
            uris = self.contacts.setdefault(event.aor, set())
            if event.status.registered:
                uris.add(event.uri)
            else:
                uris.discard(event.uri)
        else:
            # Newstate, DTMF, AGI events: each carries a fresh snapshot of its channel, which
            # updates a channel we know (and never resurrects one that already hung up).
            channel = getattr(event, "channel", None)
            if isinstance(channel, ChannelSnapshot) and channel.uniqueid in self.channels:
                self._upsert(channel)

    def _upsert(self, snapshot: ChannelSnapshot, *, bridge_id: str | None = None) -> None:
        if not snapshot.uniqueid:
            return
        current = self.channels.get(snapshot.uniqueid)
        if current is None:
            merged = snapshot if bridge_id is None else replace(snapshot, bridge_id=bridge_id)
        else:
            # Event snapshots lack the CoreShowChannel-only fields: keep what we knew.
            merged = replace(
                snapshot,
                application=snapshot.application or current.application,
                application_data=snapshot.application_data or current.application_data,
                bridge_id=current.bridge_id if bridge_id is None else bridge_id,
                duration_seconds=snapshot.duration_seconds or current.duration_seconds,
                variables={**current.variables, **snapshot.variables},
            )
        self.channels[snapshot.uniqueid] = merged

    def _remove(self, uniqueid: str) -> None:
        gone = self.channels.pop(uniqueid, None)
        if gone is not None and gone.bridge_id:
            bridge = self.bridges.get(gone.bridge_id)
            if bridge is not None:
                bridge.members.discard(uniqueid)

    def rebuild(
        self,
        channels: Iterable[ChannelSnapshot],
        bridge_ids: Iterable[str],
        devices: Mapping[str, DeviceState] | None = None,
    ) -> None:
        """Replace channels and bridges (and devices, if listed) with a fresh snapshot."""
        self.channels = {c.uniqueid: c for c in channels if c.uniqueid}
        self.bridges = {b: Bridge(b) for b in bridge_ids if b}
        for channel in self.channels.values():
            if channel.bridge_id:
                self.bridges.setdefault(channel.bridge_id, Bridge(channel.bridge_id))
                self.bridges[channel.bridge_id].members.add(channel.uniqueid)
        if devices is not None:
            self.devices = dict(devices)

    def bridged_with(self, uniqueid: str) -> list[str]:
        """The other channels in the bridge `uniqueid` is in (none if it is not bridged)."""
        channel = self.channels.get(uniqueid)
        if channel is None or not channel.bridge_id:
            return []
        bridge = self.bridges.get(channel.bridge_id)
        return sorted(bridge.members - {uniqueid}) if bridge else []

    def is_up(self, uniqueid: str) -> bool:
        """The channel exists and is answered."""
        channel = self.channels.get(uniqueid)
        return channel is not None and channel.state is ChannelState.UP
