"""The IVR menu decides from the caller's keys: choice, retry, default queue or give up."""

from __future__ import annotations

from ivr import GiveUp, Menu, MenuRun, PlayAndCollect, Route

MENU = Menu(prompt="Press 1 or 2", choices={"1": "support", "2": "billing"}, retries=1)


def test_a_valid_key_routes_to_its_queue() -> None:
    run = MenuRun(MENU)
    assert run.start() == PlayAndCollect(("Press 1 or 2",), 5.0)
    assert run.on_input("2") == Route("billing", "2", "caller chose 2")


def test_an_invalid_key_apologises_and_repeats_the_menu() -> None:
    run = MenuRun(MENU)
    run.start()
    step = run.on_input("9")
    assert isinstance(step, PlayAndCollect)
    assert step.prompts == (MENU.invalid_prompt, MENU.prompt)


def test_silence_after_every_retry_gives_up_without_a_default() -> None:
    run = MenuRun(MENU)
    run.start()
    assert isinstance(run.on_input(""), PlayAndCollect)
    assert run.on_input("") == GiveUp("no valid choice after every retry")


def test_silence_after_every_retry_uses_the_default_queue() -> None:
    run = MenuRun(Menu(prompt="p", choices={"1": "support"}, retries=0, default_queue="support"))
    run.start()
    assert run.on_input("") == Route("support", "", "no valid choice: default queue")
