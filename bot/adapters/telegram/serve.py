"""`spanner telegram`: run the bot by long polling (default) or behind a webhook, until stopped.

One process does everything by default. With several, one runs as the ingress
(`--ingress-only`: it receives, stores and sends) and the others as workers
(`--worker`: they handle claimed chats); runner.py explains the split.

The token comes from SPANNER_TELEGRAM_TOKEN or telegram.token_file (0600), never
the config file, and is never logged. In webhook mode every request must carry
the secret-token header Telegram was given; anything else gets 401.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal

from aiohttp import web
from telegram import Update

from bot.compose import App
from bot.secrets import read_secret
from storage.claims import ChatClaims
from storage.people import People
from storage.transport import TransportStore

from .runner import EVERYTHING, WORKER, SpannerTelegram

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def telegram_token(config) -> str:
    return read_secret("SPANNER_TELEGRAM_TOKEN", config.telegram.token_file, "bot token", "telegram.token_file")


def make_bot(app: App, token: str, role: str = EVERYTHING, run_scheduler: bool = True) -> SpannerTelegram:
    claims = ChatClaims(app.journal, lease_seconds=app.config.telegram.claim_lease_seconds)
    return SpannerTelegram(app, token, People(app.journal), TransportStore(app.journal), claims, role=role,
                           run_scheduler=run_scheduler)


def webhook_app(bot: SpannerTelegram, secret: str, path: str) -> web.Application:
    """The webhook endpoint: checks the secret header, stores the update, then answers 200."""
    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=401, text="unauthorized")
        try:
            data = await request.json()
            update = Update.de_json(data, bot.bot)
        except Exception as exc:
            log.warning("webhook body rejected: %s", type(exc).__name__)
            return web.Response(status=400, text="bad update")
        await bot.intake([update])  # stored before we acknowledge with 200
        return web.Response(text="ok")

    application = web.Application(client_max_size=1024 * 1024)
    application.router.add_post(path, receive)
    return application


async def serve(app: App, token: str, role: str = EVERYTHING, run_scheduler: bool = True) -> None:
    bot = make_bot(app, token, role, run_scheduler)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cfg = app.config.telegram
    if role == WORKER or cfg.mode == "polling":
        task = asyncio.create_task(bot.run_worker() if role == WORKER else bot.run_polling())
        await stop.wait()
        bot.request_stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return
    secret = read_secret("SPANNER_WEBHOOK_SECRET", cfg.webhook_secret_file, "webhook secret",
                         "telegram.webhook_secret_file")
    await bot.start()
    runner = web.AppRunner(webhook_app(bot, secret, cfg.webhook_path), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.webhook_listen, cfg.webhook_port).start()
    if cfg.webhook_url:
        await bot.bot.set_webhook(cfg.webhook_url, secret_token=secret, allowed_updates=["message",
                                  "edited_message", "callback_query", "my_chat_member"])
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await bot.stop()
