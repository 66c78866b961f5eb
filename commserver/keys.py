"""The typed keys under which the composition root registers Caruso's own components."""

from __future__ import annotations

from commserver.call_log import CallLog
from commserver.calls import CallController
from commserver.events import EventBus
from commserver.telephony.base import TelephonyBackend
from ivr.voicemail import VoicemailService
from scripts_engine import DialogScripts
from service_manager import ServiceKey
from storage import StorageManager

STORAGE = ServiceKey("storage", StorageManager)
EVENT_BUS = ServiceKey("event-bus", EventBus)
TELEPHONY = ServiceKey("telephony", TelephonyBackend)
CALLS = ServiceKey("calls", CallController)
CALL_LOG = ServiceKey("call-log", CallLog)
#: The dialog-script engine every channel (desktop, self-service page, phone) talks to.
SCRIPTS = ServiceKey("dialog-scripts", DialogScripts)
#: Voicemail boxes and messages: deposit, list, mark heard, the WAV files, callbacks.
VOICEMAIL = ServiceKey("voicemail", VoicemailService)
