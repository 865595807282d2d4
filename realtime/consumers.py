"""WebSocket consumers: authenticate, authorise, subscribe, send a snapshot, then push events. Nothing else.

The socket only pushes. Actions go through the HTTP JSON API. A client may send two texts, both reads:
`ping` (answered `{"type": "pong"}`) so a page can tell a dead connection from a quiet one, and `snapshot`
(answered with a fresh snapshot, at most one per SNAPSHOT_MIN_INTERVAL_S) so a page that stays open for hours
corrects itself even if an overloaded channel layer dropped an event.

Protocol (see also static/js/common.js):
- connect: a refused socket is accepted then closed at once with a code the page can read:
  4401 not signed in, 4403 not allowed to watch this campaign (or no such campaign).
- first message: `{"type": "snapshot", ...}` (realtime.selectors), then events built by realtime.events:
  `{"type": "call" | "agent" | "campaign", "id", "version", ..., "sent_at"}`.
- Subscribing happens before the snapshot is read, so no event committed after the snapshot can be missed;
  an event that the snapshot already covers arrives with a version the client already has and is dropped.
"""

from __future__ import annotations

import asyncio
import json
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from realtime import events
from realtime.groups import agent_group, campaign_group, wallboard_group
from voice import live as selectors

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_NOT_ALLOWED = 4403
SNAPSHOT_MIN_INTERVAL_S = 5.0


class _LiveConsumer(AsyncWebsocketConsumer):
    subscribed: tuple[str, ...] = ()
    watcher: selectors.Access | None = None
    snapshot_sent_at = 0.0

    async def connect(self) -> None:
        events.serve_on(asyncio.get_running_loop())
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_NOT_SIGNED_IN)
            return
        campaign_id = int(self.scope["url_route"]["kwargs"]["campaign_id"])
        access = await database_sync_to_async(self.access)(user=user, campaign_id=campaign_id)
        if access is None:
            await self._refuse(CLOSE_NOT_ALLOWED)
            return
        self.watcher = access
        self.subscribed = self.groups_for(access)
        for group in self.subscribed:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_snapshot()

    async def send_snapshot(self) -> None:
        self.snapshot_sent_at = time.monotonic()
        snapshot = await database_sync_to_async(self.snapshot)(self.watcher)
        await self.send(text_data=json.dumps(snapshot))

    async def _refuse(self, code: int) -> None:
        # Accept first: a close before accept is an HTTP 403 and the page would only see code 1006.
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        for group in self.subscribed:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "ping":
            # Also renews the subscriptions: channels-redis forgets group members after a day.
            for group in self.subscribed:
                await self.channel_layer.group_add(group, self.channel_name)
            await self.send(text_data='{"type": "pong"}')
        elif text_data == "snapshot" and self.watcher is not None and self.may_snapshot():
            await self.send_snapshot()

    def may_snapshot(self) -> bool:
        return time.monotonic() - self.snapshot_sent_at >= SNAPSHOT_MIN_INTERVAL_S

    async def event_push(self, message: dict) -> None:
        await self.send(text_data=message["text"])

    # -- per page ------------------------------------------------------------------------------------------

    access = staticmethod(selectors.console_access)

    def groups_for(self, access: selectors.Access) -> tuple[str, ...]:
        raise NotImplementedError

    def snapshot(self, access: selectors.Access) -> dict:
        raise NotImplementedError


class ConsoleConsumer(_LiveConsumer):
    """An agent console: `/ws/campaigns/<id>/`. Campaign news, the agent's own session and lines."""

    access = staticmethod(selectors.console_access)

    def groups_for(self, access: selectors.Access) -> tuple[str, ...]:
        groups = [campaign_group(access.campaign_id)]
        if access.session_id is not None:
            groups.append(agent_group(access.session_id))
        return tuple(groups)

    def snapshot(self, access: selectors.Access) -> dict:
        return selectors.console_snapshot(campaign_id=access.campaign_id, session_id=access.session_id)


class WallboardConsumer(_LiveConsumer):
    """A manager's wallboard: `/ws/campaigns/<id>/wallboard/`. Every agent and every line of the campaign."""

    access = staticmethod(selectors.wallboard_access)

    def groups_for(self, access: selectors.Access) -> tuple[str, ...]:
        return (wallboard_group(access.campaign_id),)

    def snapshot(self, access: selectors.Access) -> dict:
        return selectors.wallboard_snapshot(campaign_id=access.campaign_id)
