"""The composition root: the one place that builds every component and wires them together.

`build_server` is an async context manager on an `AsyncExitStack`: components start in
dependency order and stop in reverse; on the way out live calls are drained first (new calls
refused, live ones given `server.drain_timeout` seconds, the rest hung up and recorded), then
the web front, the services, the record writer and storage close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from commserver.call_log import StoredCallLog
from commserver.calls import CallController
from commserver.config import BackendName, Config
from commserver.contacts import CallRecord
from commserver.contacts.records import MODEL_FILE as CONTACTS_MODEL
from commserver.errors import ConfigError
from commserver.events import EventBus
from commserver.identification import DirectoryIdentification
from commserver.keys import CALL_LOG, CALLS, EVENT_BUS, SCRIPTS, STORAGE, TELEPHONY, VOICEMAIL
from commserver.telephony.base import Prompt, TelephonyBackend
from commserver.telephony.sim import SimBackend
from commserver.telephony.sip import SipBackend
from dialog_scripts import PACKAGE_DIR as SHIPPED_SCRIPTS
from ivr import Menu
from ivr.script_channel import PhoneScriptChannel, PhoneScriptSettings
from ivr.voicemail import MODEL_FILE as VOICEMAIL_MODEL
from ivr.voicemail import Box, VoicemailPolicy, VoicemailService
from monitor.server import WEB_MODEL, WebFront, build_app
from scripts_engine import (
    ActionExecutor,
    DialogScripts,
    InvalidScript,
    ScriptCatalog,
    ScriptOutcome,
    ScriptPlacement,
    ScriptRunner,
    SmtpMailer,
    SmtpSettings,
    StorageBusinessObjects,
    StorageRunStore,
    check_placement,
    runs_model,
)
from service_manager import InterfaceRegistry, ServiceManager, load_service_model
from service_manager.errors import UnknownInterface
from service_manager.examples.customer_directory import (
    CUSTOMER_DIRECTORY,
    CUSTOMER_DIRECTORY_V1,
    LegacyCustomerDirectory,
)
from storage import BusinessObjectModel, StorageManager, load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Server:
    """A running Caruso: its components, for the CLI, tests and benchmarks."""

    config: Config
    storage: StorageManager
    services: ServiceManager
    bus: EventBus
    backend: TelephonyBackend
    calls: CallController
    web: WebFront
    scripts: ScriptRunner


def make_backend(config: Config) -> TelephonyBackend:
    """The telephony backend the configuration names."""
    if config.telephony.backend is BackendName.SIM:
        return SimBackend(answer_delay=config.telephony.sim.answer_delay)
    if config.telephony.backend is BackendName.SIP:
        return SipBackend.from_config(config)
    if config.telephony.backend is BackendName.ASTERISK:
        # Loaded only when configured: sites without Asterisk never import the AMI client.
        from commserver.telephony.asterisk import AsteriskBackend

        return AsteriskBackend.from_config(config)
    raise ConfigError(
        f"telephony.backend = '{config.telephony.backend.value}' is not available",
        key="telephony.backend",
    )


def _menu(config: Config) -> Menu:
    settings = config.ivr.menu
    return Menu(
        prompt=settings.prompt,
        choices=dict(settings.choices),
        timeout=settings.timeout,
        retries=settings.retries,
        default_queue=settings.default_queue,
    )


def load_scripts(config: Config) -> ScriptCatalog:
    """Every script of `[scripts] folder` (default: the shipped ones), validated.

    A broken script stops the start: `InvalidScript` lists every problem as file:line.
    """
    folder = config.scripts.folder or SHIPPED_SCRIPTS
    if not folder.is_dir():
        raise ConfigError(
            f"scripts.folder: {folder} is not a folder of dialog scripts", key="scripts.folder"
        )
    catalog = ScriptCatalog()
    problems = catalog.load_directory(folder)
    if problems:
        raise InvalidScript(problems)
    return catalog


def script_placement(config: Config) -> ScriptPlacement:
    """Where each script runs, from `[scripts]`."""
    settings = config.scripts
    return ScriptPlacement(
        queues=dict(settings.queues),
        numbers=dict(settings.phone),
        public=frozenset(settings.public),
    )


def _script_runner(
    config: Config, catalog: ScriptCatalog, storage: StorageManager, services: ServiceManager
) -> ScriptRunner:
    """The runner every channel talks to: runs stored, services called through the manager."""
    objects = StorageBusinessObjects(storage)
    executor = ActionExecutor(
        mailer=_mailer(config),
        sender=config.smtp.mail_from,
        services=services,
        objects=objects,
        on_outcome=_script_outcome,
    )
    return ScriptRunner(catalog, executor=executor, store=StorageRunStore(storage), objects=objects)


async def _script_outcome(outcome: ScriptOutcome) -> None:
    # The phone channel routes its own transfers; callbacks and desktop transfers wait for
    # outbound dialling and agent-side transfers: they are stored with the run and logged.
    log.info("dialog-script run %s asks for %s", outcome.run_id, type(outcome).__name__)


def _check_scripts(
    config: Config,
    catalog: ScriptCatalog,
    models: list[BusinessObjectModel],
    services: ServiceManager,
) -> None:
    """Refuse to start when a placed script cannot work here; log what may work later."""
    available: dict[str, set[str]] = {}
    for info in services.list():
        try:
            spec = services.interfaces.get(info.interface)
        except UnknownInterface:
            continue  # an in-process component, not callable by name from scripts
        available[info.name] = set(spec.methods)
    result = check_placement(
        catalog,
        script_placement(config),
        models=models,
        services=available,
        queues=[queue.name for queue in config.queues],
    )
    for warning in result.warnings:
        log.warning("dialog scripts: %s", warning)
    for note in result.notes:
        log.debug("dialog scripts (not placed anywhere): %s", note)
    log.info(
        "dialog scripts: %d loaded, %d placed on a queue, number or the public page",
        len(catalog),
        len(script_placement(config).uses()),
    )
    if result.errors:
        raise ConfigError(
            "dialog scripts cannot run where [scripts] places them:\n  "
            + "\n  ".join(result.errors),
            key="scripts",
        )


def _phone_scripts(
    config: Config, runner: ScriptRunner, backend: TelephonyBackend
) -> PhoneScriptChannel[Prompt] | None:
    """The phone channel for the numbers placed on scripts (None when there are none)."""
    settings = config.scripts
    if not settings.phone:
        return None
    return PhoneScriptChannel(
        runner,
        backend,
        Prompt,
        numbers=settings.phone,
        queues=[queue.name for queue in config.queues],
        settings=PhoneScriptSettings(
            key_timeout=settings.phone_key_timeout, retries=settings.phone_retries
        ),
    )


@asynccontextmanager
async def build_server(
    config: Config, *, backend: TelephonyBackend | None = None
) -> AsyncIterator[Server]:
    """Start every component; yield once the server answers; drain and stop on exit."""
    backend = backend or make_backend(config)
    catalog = load_scripts(config)  # before anything opens: a broken script stops the start
    async with AsyncExitStack() as stack:
        models = [load_model(CONTACTS_MODEL), load_service_model(), load_model(WEB_MODEL)]
        models += [runs_model(), load_model(VOICEMAIL_MODEL)]
        models += [load_model(Path(p)) for p in config.storage.models]
        storage = await StorageManager.open(config.storage_url, models=models)
        stack.push_async_callback(storage.close)
        storage.bind(CallRecord, "CallRecord")

        services = await stack.enter_async_context(
            ServiceManager(
                storage=storage,
                interfaces=InterfaceRegistry([CUSTOMER_DIRECTORY_V1]),
                call_timeout=config.services.call_timeout,
            )
        )
        bus = EventBus()
        stack.callback(bus.close)
        writer = await stack.enter_async_context(storage.batch_writer(CallRecord))
        call_log = StoredCallLog(storage, writer)
        scripts = _script_runner(config, catalog, storage, services)
        voicemail = _voicemail(config, storage)

        calls = CallController(
            backend=backend,
            bus=bus,
            acd_config=config.acd,
            agents=config.agents,
            menu=_menu(config),
            ivr_numbers=config.ivr.numbers,
            records=call_log,
            max_calls=config.telephony.max_calls,
            data_dir=config.server.data_dir,
            ready_on_register=config.telephony.sip.ready_on_register,
            identification=DirectoryIdentification(services),
            ask_customer_number=config.ivr.ask_customer_number,
            announce_every=config.ivr.announce_every,
            hours=config.ivr.hours.opening_hours(),
            closed_prompt=config.ivr.hours.closed_prompt,
            phone_scripts=_phone_scripts(config, scripts, backend),
            voicemail=voicemail,
            voicemail_max_seconds=config.voicemail.max_seconds,
            outbound_number_pattern=config.telephony.outbound_number_pattern,
        )
        voicemail.route_callbacks_through(calls)
        services.register(STORAGE, storage, version="1")
        services.register(EVENT_BUS, bus, version="1")
        services.register(TELEPHONY, backend, version=backend.name)
        services.register(CALLS, calls, version="1")
        services.register(CALL_LOG, call_log, version="1")
        # The manager starts it (e-mail and callback workers) and closes it after the drain.
        services.register(VOICEMAIL, voicemail, version="1")
        services.register(
            SCRIPTS, DialogScripts(scripts, script_placement(config)), version="1"
        )
        if config.services.customer_directory == "legacy":
            directory = LegacyCustomerDirectory(storage)
            services.register(CUSTOMER_DIRECTORY, directory, version="legacy-1")
        await services.restore()
        _check_scripts(config, catalog, models, services)

        token = config.services.registration_token or None
        web = await stack.enter_async_context(
            WebFront(
                build_app(services, registration_token=token),
                host=config.web.host,
                port=config.web.port,
            )
        )
        await calls.open()
        await backend.open(calls)
        stack.push_async_callback(_drain, calls, backend, config.server.drain_timeout)
        yield Server(config, storage, services, bus, backend, calls, web, scripts)


def _mailer(config: Config) -> SmtpMailer | None:
    """The one SMTP client of `[smtp]` (None when no host is set)."""
    smtp = config.smtp
    if not smtp.host:
        return None
    return SmtpMailer(
        SmtpSettings(
            smtp.host,
            smtp.port,
            smtp.mail_from,
            timeout=smtp.timeout,
            starttls=smtp.starttls,
            username=smtp.username or None,
            password=smtp.password or None,
        )
    )


def _voicemail(config: Config, storage: StorageManager) -> VoicemailService:
    """The voicemail boxes of `[voicemail]`, e-mailing through `[smtp]` when a host is set."""
    smtp, settings = config.smtp, config.voicemail
    mailer = _mailer(config)
    boxes = [
        Box(
            name,
            emails=box.email,
            agent=box.agent or None,
            callback_queue=box.callback_queue or None,
            callbacks=box.callback,
        )
        for name, box in settings.boxes.items()
    ]
    return VoicemailService(
        storage,
        root=config.server.data_dir / "voicemail",
        boxes=boxes,
        queues=[queue.name for queue in config.queues],
        mailer=mailer,
        sender=smtp.mail_from,
        policy=VoicemailPolicy(
            email_attempts=settings.email_attempts,
            email_retry=settings.email_retry,
            callback_after=settings.callback_after,
            callback_work_limit=settings.callback_work_limit,
        ),
    )


async def _drain(calls: CallController, backend: TelephonyBackend, timeout: float) -> None:
    """Refuse new calls, let live ones finish, then hang up and record whatever is left."""
    await backend.stop_accepting()
    if not await calls.drain(timeout):
        log.warning("calls still up after %.0f s of draining: hanging them up", timeout)
    await backend.close()
    if not await calls.drain(5.0):
        await calls.close()
    await asyncio.sleep(0)
