"""Commands everyone has: /start (with an invitation code too), /help by role, /privacy, /timezone.

/help is generated from the registry and prompts/commands.toml: the commands of
the person's own roles first, the rest under "also". /privacy says where the
journal lives and who can see what, naming every entry shared right now.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .context import Context
from .records import Choice, Reply
from .registry import Button, Call, Registry

#: The time zone buttons at onboarding: a zone name, or "other" to type one.
TIMEZONE = Button("tz", r"(other|[A-Za-z_]+(?:/[A-Za-z0-9_+\-]+){0,2})")


class GeneralCommands:
    def __init__(self, ctx: Context, registry: Registry, reflection, mentoring, sharing):
        self.ctx = ctx
        self.registry = registry
        self.reflection = reflection
        self.mentoring = mentoring
        self.sharing = sharing

    def register(self, r: Registry) -> None:
        r.command("start", self.start)
        r.command("help", self.help)
        r.command("privacy", self.privacy)
        r.command("timezone", lambda call: self.timezone(call.user, call.args))
        r.button(TIMEZONE, self.timezone_button)

    # ----- /start -----------------------------------------------------------------------------

    def start(self, call: Call) -> list[Reply]:
        say = self.ctx.say
        code = call.args.split()[0] if call.args.strip() else ""
        if code and not call.event.onboarding:
            role = self.ctx.people.redeem(code, call.user, call.event.display_name) \
                if self.ctx.people is not None else None
            if role is None:
                return [Reply(say("invite_invalid"))]
            return [Reply(say("invite_accepted", role=role))]
        return self.greet(call)

    def greet(self, call: Call) -> list[Reply]:
        say, event = self.ctx.say, call.event
        name = event.display_name or call.user.split(":", 1)[-1]
        if event.onboarding:
            zone = self.ctx.settings.timezone
            return [Reply(say("onboarding", name=name)),
                    Reply(say("onboarding_timezone", zone=zone),
                          (Choice(zone, TIMEZONE.data(zone)),
                           Choice(say("button_other_timezone"), TIMEZONE.data("other"))))]
        replies = [Reply(say("welcome", name=name))]
        if call.state.get("reflect"):
            replies.append(Reply(say("pending_at_start", **self.reflection.describe_pending(call.state["reflect"]))))
        return replies + self.mentoring.waiting_checkin(call.user)

    # ----- /help ------------------------------------------------------------------------------

    def help(self, call: Call) -> list[Reply]:
        say, texts = self.ctx.say, self.ctx.prompts.commands
        roles = set(self.ctx.roles(call.user))
        own, also = [], []
        for command in self.registry.ordered(texts):
            line = say("help_line", usage=texts[command.name].usage, help=texts[command.name].help)
            (own if not command.roles or roles & set(command.roles) else also).append(line)
        lines = [say("help_header")] + own
        if also:
            lines += ["", say("help_also")] + also
        return [Reply("\n".join(lines))]

    # ----- /privacy ---------------------------------------------------------------------------

    def privacy(self, call: Call) -> list[Reply]:
        say = self.ctx.say
        parts = [say("privacy", data_dir=self.ctx.settings.data_dir_label)]
        shares = self.ctx.sharing.shares_of(call.user) if self.ctx.sharing is not None else []
        if shares:
            parts.append("\n".join([say("privacy_shared")] + [self.sharing.share_line(s) for s in shares]))
        else:
            parts.append(say("privacy_nothing_shared"))
        pairing = self.ctx.mentoring.pairing(call.user) if self.ctx.mentoring is not None else None
        if pairing is not None:
            parts.append(say("privacy_mentor", mentor=pairing.mentor_name))
        return [Reply("\n".join(parts))]

    # ----- /timezone --------------------------------------------------------------------------

    def timezone(self, user: str, args: str) -> list[Reply]:
        zone = args.strip()
        if not zone:
            current = self.ctx.journal.get_timezone(user) or self.ctx.settings.timezone
            return [Reply(self.ctx.say("timezone_current", zone=current))]
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return [Reply(self.ctx.say("timezone_unknown", zone=zone[:60]))]
        self.ctx.journal.set_timezone(user, zone)
        return [Reply(self.ctx.say("timezone_set", zone=zone))]

    def timezone_button(self, call: Call) -> list[Reply]:
        (zone,) = call.values
        if zone == "other":
            return [Reply(self.ctx.say("timezone_other"))]
        return self.timezone(call.user, zone)
