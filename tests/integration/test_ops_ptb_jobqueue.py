"""python-telegram-bot's JobQueue runs on the service's one scheduler (handed over by OpsScheduler)."""

from __future__ import annotations

import asyncio

from telegram.ext import ApplicationBuilder, ContextTypes

from bot.engine.clock import ManualClock
from bot.ops.scheduler import OpsScheduler
from tests.fakes.telegram_server import FakeTelegram


async def test_ptb_jobs_run_on_the_shared_scheduler_and_the_application_does_not_own_it() -> None:
    sch = OpsScheduler(clock=ManualClock(0), alert=lambda *a: None)

    async def ours() -> None:
        return None

    sch.every("ours", "our job", ours, 3600)
    sch.start()
    fired = asyncio.Event()

    async def ptb_job(context: ContextTypes.DEFAULT_TYPE) -> None:
        await context.bot.send_message(chat_id=1001, text=f"job {context.job.name if context.job else '?'}")
        fired.set()

    try:
        async with FakeTelegram() as fake:
            app = (
                ApplicationBuilder()
                .token(fake.token)
                .base_url(fake.base_url)
                .base_file_url(fake.base_file_url)
                .job_queue(sch.ptb_job_queue())
                .build()
            )
            assert app.job_queue is not None and app.job_queue.scheduler is sch.aps
            async with app:
                await app.start()  # starting the Application must not (re)configure or restart our scheduler
                try:
                    await _exercise(app, sch, fake, fired, ptb_job)
                finally:
                    if app.running:
                        await app.stop()
            # the Application stopped: its jobs are gone, the service's scheduler and jobs are not
            assert sch.running
            assert {job.id for job in sch.aps.get_jobs()} == {"ours"}
    finally:
        await sch.stop(1)
    assert not sch.running


async def _exercise(app, sch, fake, fired, ptb_job) -> None:  # type: ignore[no-untyped-def]
    assert app.job_queue is not None
    app.job_queue.run_once(ptb_job, 0, name="hello")
    app.job_queue.run_repeating(ptb_job, 3600, first=3600, name="later")
    async with asyncio.timeout(5):
        await fired.wait()
    [sent] = await fake.wait_for_sent(lambda m: m.chat_id == 1001)
    assert sent.text == "job hello"
    ids = {job.id for job in sch.aps.get_jobs()}
    assert "ours" in ids and len(ids) == 2  # ours + PTB's repeating job (run_once is gone)
