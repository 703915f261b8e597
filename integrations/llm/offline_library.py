"""The offline provider's built-in library: common MSP problems with questions, fixes and causes.

Rule-based and deliberately small; it exists so a local `dev` stack gives a believable walk and chat
without a network or an API key, not to compete with a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Question:
    """A question with options; some answers end the walk early (`resolves`), some by escalating."""

    text: str
    options: tuple[str, ...]
    resolves: dict[str, str] = field(default_factory=dict)
    escalates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Problem:
    """One common problem: how to recognise it, what to ask, how to fix it."""

    key: str
    title: str
    keywords: tuple[str, ...]
    category_hints: tuple[str, ...]
    default_category: str
    questions: tuple[Question, ...]
    resolution: str
    likely_cause: str
    fix_title: str
    fix_description: str
    checks: tuple[str, ...]

    @property
    def a_title(self) -> str:
        """The title with its indefinite article ('an Outlook ...', 'a VPN ...')."""
        return f"{'an' if self.title[0].lower() in 'aeiou' else 'a'} {self.title}"


PRINTING = Problem(
    key="printing", title="printing problem", default_category="Printing",
    keywords=("printer", "printing", "print", "spooler", "print queue", "toner", "paper jam"),
    category_hints=("print", "peripheral", "hardware"),
    questions=(
        Question("Can other people print to this printer?",
                 ("Yes, only this user is affected", "No, nobody can print to it", "Not sure"),
                 resolves={"No, nobody can print to it": (
                     "The printer itself is the problem: 1. Check its display for errors (paper, toner, jam). "
                     "2. Power-cycle it. 3. Print a configuration page to confirm it has a network address. "
                     "If nobody can print after that, escalate to an engineer to check the print server.")}),
        Question("On this PC, does the printer show as offline or have jobs stuck in its queue?",
                 ("Shows offline", "Jobs stuck in the queue", "Neither, it just doesn't print")),
        Question("Does a Windows test page print (Printer properties > Print Test Page)?", ("Yes", "No"),
                 resolves={"Yes": (
                     "The printer and driver work; the problem is in the application. Check the printer selected "
                     "in the application and its page settings, and try printing to PDF to confirm.")}),
    ),
    resolution=("1. Open Services and stop 'Print Spooler'. 2. Delete the files in C:\\Windows\\System32\\spool\\"
                "PRINTERS. 3. Start 'Print Spooler'. 4. Remove and re-add the printer. 5. Print a test page. "
                "If it still fails, escalate to an engineer to reinstall the driver from the print server."),
    likely_cause="A stuck print spooler queue or a stale printer mapping or driver on the user's PC.",
    fix_title="Restart the Print Spooler and clear the queue",
    fix_description="Stop the Print Spooler service, clear C:\\Windows\\System32\\spool\\PRINTERS, start it "
                    "again, then remove and re-add the printer and print a test page.",
    checks=("Confirm whether other users can print to the same printer", "Look for stuck jobs in the queue",
            "Restart the Print Spooler and clear the spool folder", "Remove and re-add the printer mapping",
            "Reinstall the printer driver from the print server"),
)

VPN = Problem(
    key="vpn", title="VPN connection problem", default_category="Network",
    keywords=("vpn", "anyconnect", "globalprotect", "forticlient", "remote access", "tunnel", "work from home"),
    category_hints=("vpn", "remote", "network"),
    questions=(
        Question("Does the user have working internet without the VPN (can they open a public website)?",
                 ("Yes", "No"),
                 resolves={"No": (
                     "This is a home internet problem, not the VPN: have the user restart their router or try a "
                     "phone hotspot, then reconnect the VPN once browsing works.")}),
        Question("What happens when they connect?",
                 ("Sign-in fails", "Connects but internal resources don't load", "Times out or can't reach server"),
                 resolves={"Sign-in fails": (
                     "Check the account is not locked or expired and that the MFA prompt is approved, then re-enter "
                     "the credentials in the VPN client. If the account is fine, escalate to an engineer to check "
                     "the VPN gateway's authentication logs.")}),
        Question("Has anything changed recently (new PC, client update, password change)?",
                 ("Yes, something changed", "No changes we know of")),
    ),
    resolution=("1. Fully quit and restart the VPN client. 2. Reboot the PC. 3. Make sure the VPN client is the "
                "approved current version (reinstall it if in doubt). 4. Try another network (a phone hotspot) to "
                "rule out a blocking home router. If it still fails, escalate to an engineer with the client's "
                "error message."),
    likely_cause="A stale VPN client state or a home network that blocks the VPN protocol.",
    fix_title="Restart and update the VPN client",
    fix_description="Quit the VPN client completely, reboot, update or reinstall the client, and test from a "
                    "phone hotspot to rule out the home router.",
    checks=("Confirm internet access without the VPN", "Capture the VPN client's exact error message",
            "Reinstall the current VPN client version", "Test from a different network",
            "Check the VPN gateway's logs for the user's attempts"),
)

DNS = Problem(
    key="dns", title="DNS / name resolution problem", default_category="Network",
    keywords=("dns", "name resolution", "can't resolve", "server not found", "dns_probe", "nslookup",
              "some websites", "website won't load"),
    category_hints=("dns", "network", "internet"),
    questions=(
        Question("Can the PC reach an IP address (ping 8.8.8.8) but not names like google.com?",
                 ("Yes, IP works but names fail", "No, nothing works", "Not sure"),
                 resolves={"No, nothing works": (
                     "This is a connectivity problem rather than DNS: check the cable or Wi-Fi, run ipconfig to "
                     "confirm the PC has an address, and restart the switch port or router. Escalate if other "
                     "users are offline too.")}),
        Question("Is it just this PC or everyone at the site?", ("Just this PC", "Everyone at the site"),
                 resolves={"Everyone at the site": (
                     "Site-wide name resolution failure: escalate to an engineer to check the DNS server and the "
                     "firewall's DNS forwarders.")},
                 escalates=frozenset({"Everyone at the site"})),
        Question("Does 'ipconfig /flushdns' and reopening the browser fix it?", ("Yes", "No"),
                 resolves={"Yes": "Resolved by clearing the DNS cache. If it recurs, note it on the ticket."}),
    ),
    resolution=("1. Run ipconfig /all and check the DNS servers match the site's standard. 2. If they are wrong "
                "or set by hand, set the adapter to obtain DNS automatically. 3. Run ipconfig /release, /renew "
                "and /flushdns. 4. Test nslookup of an internal and a public name. Escalate to an engineer if "
                "internal names still fail."),
    likely_cause="The PC uses wrong or unreachable DNS servers, or has a stale DNS cache.",
    fix_title="Reset the adapter's DNS settings and flush the cache",
    fix_description="Set the network adapter to obtain DNS servers automatically, then run ipconfig /release, "
                    "/renew and /flushdns and test with nslookup.",
    checks=("Compare ipconfig /all DNS servers with the site standard", "Flush the DNS cache",
            "Test nslookup against internal and public names", "Check the DNS server's forwarders"),
)

OUTLOOK = Problem(
    key="outlook_m365", title="Outlook / Microsoft 365 sign-in problem", default_category="Email",
    keywords=("outlook", "office 365", "microsoft 365", "m365", "o365", "teams", "onedrive", "sign in",
              "sign-in", "mfa", "authenticator", "email", "mailbox", "password prompt"),
    category_hints=("email", "outlook", "365", "office", "microsoft", "cloud"),
    questions=(
        Question("Can the user sign in at outlook.office.com in a browser?", ("Yes", "No"),
                 resolves={"No": (
                     "The account itself cannot sign in: check whether it is locked, the password expired or the "
                     "MFA method changed. Reset the password or re-register MFA per the account's procedure, or "
                     "escalate to an engineer with Entra ID admin access.")}),
        Question("What does Outlook do?",
                 ("Keeps asking for the password", "Shows Disconnected / Trying to connect", "Won't open at all")),
        Question("Is Office signed in with the right work account (File > Office Account)?",
                 ("Yes", "No, a different account", "Not sure"),
                 resolves={"No, a different account": (
                     "Sign out of the wrong account in File > Office Account, close all Office apps, reopen "
                     "Outlook and sign in with the user's work account.")}),
    ),
    resolution=("1. Close Outlook and remove the saved Office credentials in Windows Credential Manager "
                "(entries starting with MicrosoftOffice). 2. Reopen Outlook, sign in and approve the MFA prompt. "
                "3. If it still fails, create a new Outlook profile (Control Panel > Mail > Show Profiles). "
                "Escalate to an engineer if a new profile does not connect."),
    likely_cause="Stale cached Office credentials or a damaged Outlook profile after a password or MFA change.",
    fix_title="Clear cached Office credentials and sign in again",
    fix_description="Remove the MicrosoftOffice entries from Credential Manager, reopen Outlook and sign in "
                    "with MFA; rebuild the Outlook profile if that does not help.",
    checks=("Test sign-in at outlook.office.com", "Check the account's sign-in logs in Entra ID",
            "Clear cached Office credentials", "Create a new Outlook profile"),
)

LOCKOUT = Problem(
    key="account_lockout", title="account lockout / password problem", default_category="Accounts",
    keywords=("locked out", "lockout", "account locked", "password expired", "forgot password", "can't log in",
              "cannot log in", "can't sign in", "reset password", "password reset"),
    category_hints=("account", "password", "identity", "access", "user"),
    questions=(
        Question("Is the account locked, or is the password rejected or expired?",
                 ("Locked out", "Password expired", "Password rejected, not locked")),
        Question("Has the user changed their password in the last few days?", ("Yes", "No")),
        Question("Does it lock again shortly after being unlocked?",
                 ("Yes, it keeps locking", "No, it stays unlocked"),
                 resolves={"Yes, it keeps locking": (
                     "Repeated lockouts mean an old password is tried somewhere (phone mail app, mapped drive, "
                     "saved credential, another PC). Escalate to an engineer to trace the lockout source in the "
                     "domain controller security log (event 4740).")},
                 escalates=frozenset({"Yes, it keeps locking"})),
    ),
    resolution=("1. Verify the user's identity per the account's policy. 2. Unlock the account (and reset an "
                "expired password) in Active Directory or Entra ID. 3. Have the user sign in and choose a new "
                "password. 4. Update the password on their phone mail app and saved credentials so it does not "
                "lock again."),
    likely_cause="Repeated failed sign-ins (often an old password saved on a phone or in Credential Manager) "
                 "or an expired password.",
    fix_title="Unlock the account and update saved passwords",
    fix_description="Verify identity, unlock or reset the account, then update the password everywhere it is "
                    "saved (phone mail, Credential Manager, mapped drives).",
    checks=("Verify the caller's identity", "Check lockout status and password expiry",
            "Find the lockout source (event 4740 on the PDC emulator)", "Update saved credentials on all devices"),
)

WIFI = Problem(
    key="wifi", title="Wi-Fi connectivity problem", default_category="Network",
    keywords=("wifi", "wi-fi", "wireless", "ssid", "access point", "keeps disconnecting", "no internet", "signal"),
    category_hints=("wi-fi", "wifi", "wireless", "network"),
    questions=(
        Question("Are other devices in the same spot connected fine?",
                 ("Yes, only this device", "No, others drop too"),
                 resolves={"No, others drop too": (
                     "Several devices are affected, so the access point or internet line is the likely problem. "
                     "Escalate to an engineer with the location and the times it dropped.")},
                 escalates=frozenset({"No, others drop too"})),
        Question("Does the device fail to connect, or connect and then drop?",
                 ("Can't connect", "Connects then drops", "Connected but no internet")),
        Question("Does 'Forget network' and reconnecting help?", ("Yes", "No"),
                 resolves={"Yes": "Resolved by re-joining the network. If drops recur, note the times on the ticket."}),
    ),
    resolution=("1. Toggle airplane mode, then restart the device. 2. Update the Wi-Fi adapter driver from the "
                "manufacturer. 3. In Device Manager > adapter > Power Management, untick 'Allow the computer to "
                "turn off this device to save power'. 4. Run 'netsh winsock reset' and reboot. Escalate to an "
                "engineer if it still drops."),
    likely_cause="A stale saved Wi-Fi profile, adapter power saving or an outdated wireless driver.",
    fix_title="Re-join the network and update the Wi-Fi driver",
    fix_description="Forget and re-join the network, update the wireless driver and turn off adapter power "
                    "saving; reset winsock if drops continue.",
    checks=("Check whether other devices nearby are affected", "Forget and re-join the network",
            "Update the wireless adapter driver", "Disable adapter power saving"),
)

DISK_FULL = Problem(
    key="disk_full", title="disk full / low disk space", default_category="Hardware",
    keywords=("disk full", "low disk", "disk space", "out of space", "drive is full", "no space", "c: drive",
              "c drive", "storage"),
    category_hints=("storage", "disk", "hardware", "performance"),
    questions=(
        Question("How much free space does C: have (This PC)?", ("Less than 5 GB", "5 to 20 GB", "More than 20 GB"),
                 resolves={"More than 20 GB": (
                     "Local disk space is not the problem: check which application says 'disk full' (it may be a "
                     "network drive or a mailbox quota) and re-triage.")}),
        Question("Is OneDrive syncing files to this PC?", ("Yes", "No", "Not sure")),
        Question("Is this the user's own PC or a shared PC or server?", ("User's own PC", "Shared PC or server"),
                 resolves={"Shared PC or server": (
                     "Escalate to an engineer: freeing space on shared machines and servers needs someone who can "
                     "review logs, profiles and shadow copies safely.")},
                 escalates=frozenset({"Shared PC or server"})),
    ),
    resolution=("1. Run Disk Cleanup as administrator with 'Clean up system files' (Windows Update cleanup). "
                "2. Empty the Recycle Bin and old Downloads after checking with the user. 3. In OneDrive turn on "
                "Files On-Demand and 'Free up space'. 4. Use Settings > Storage to find large folders. Escalate if "
                "less than 10% is free afterwards."),
    likely_cause="Windows Update leftovers, temporary files and locally synced OneDrive files filling C:.",
    fix_title="Clean up system files and enable OneDrive Files On-Demand",
    fix_description="Run Disk Cleanup with system files, clear Recycle Bin and Downloads, and switch OneDrive "
                    "to Files On-Demand to free local space.",
    checks=("Measure free space on C:", "Run Disk Cleanup including system files",
            "Turn on OneDrive Files On-Demand", "Find large folders with Storage settings"),
)

SLOW_PC = Problem(
    key="slow_pc", title="slow or freezing PC", default_category="Hardware",
    keywords=("slow", "sluggish", "freezing", "freezes", "hangs", "takes forever", "performance", "high cpu",
              "100% disk", "not responding", "laggy"),
    category_hints=("performance", "hardware", "pc", "computer", "desktop"),
    questions=(
        Question("When did it start being slow?",
                 ("Suddenly, in the last day or two", "Gradually over weeks", "It has always been slow")),
        Question("In Task Manager, is CPU, memory or disk near 100%?", ("CPU", "Memory", "Disk", "None of them")),
        Question("When was the PC last restarted (Task Manager > Performance > Up time)?",
                 ("Less than a day ago", "More than a few days ago"),
                 resolves={"More than a few days ago": (
                     "Restart the PC and let pending updates finish, then check again. Reopen the ticket if it is "
                     "still slow after the restart.")}),
    ),
    resolution=("1. Restart and install pending Windows updates. 2. In Task Manager > Startup, disable startup "
                "apps the user does not need. 3. Run a full antivirus scan. 4. Keep at least 15% of C: free. "
                "5. If memory stays above 90% or the PC has a hard disk rather than an SSD, escalate to an engineer "
                "with the Task Manager findings for an upgrade recommendation."),
    likely_cause="Too many startup apps, pending updates or a resource bottleneck (memory or an ageing disk).",
    fix_title="Restart, finish updates and trim startup apps",
    fix_description="Restart and complete pending updates, disable unneeded startup apps, run an antivirus scan "
                    "and free disk space.",
    checks=("Check Task Manager for the saturated resource", "Restart and finish pending updates",
            "Disable unneeded startup apps", "Run a full antivirus scan", "Check the disk's health (SMART)"),
)

GENERIC = Problem(
    key="generic", title="unrecognised problem", default_category="General",
    keywords=(), category_hints=("general", "other", "misc"),
    questions=(
        Question("Does the problem affect just this user or several people?", ("Just this user", "Several people"),
                 resolves={"Several people": (
                     "Several users are affected: escalate to an engineer now with who is affected and since when.")},
                 escalates=frozenset({"Several people"})),
        Question("When did it start?", ("Today", "This week", "Longer ago")),
        Question("Has anything changed recently (updates, new software, a password change)?",
                 ("Yes", "No", "Not sure")),
    ),
    resolution=("No offline rule covers this problem. Record the answers above on the ticket and escalate to an "
                "engineer."),
    likely_cause="Unknown: no offline rule matches this problem.",
    fix_title="Escalate to an engineer",
    fix_description="Record what the user reported and the answers gathered, then escalate.",
    checks=("Record who is affected and since when", "Note recent changes", "Escalate to an engineer"),
)

# Order breaks ties: the more specific problems come first.
LIBRARY: tuple[Problem, ...] = (PRINTING, VPN, OUTLOOK, LOCKOUT, DNS, WIFI, DISK_FULL, SLOW_PC)


def normalize(text: str) -> str:
    """Lower-case with collapsed whitespace and unified apostrophes."""
    return " ".join(text.lower().replace("\u2019", "'").split())


def keyword_hits(text: str, keywords: tuple[str, ...]) -> int:
    """How many keywords occur in `text` at a word start (so 'print' also matches 'printer')."""
    norm = normalize(text)
    return sum(1 for kw in keywords if re.search(r"(?<![\w])" + re.escape(kw), norm))


def match_problem(text: str) -> Problem | None:
    """The library problem whose keywords `text` hits most, or None."""
    best, best_score = None, 0
    for problem in LIBRARY:
        score = keyword_hits(text, problem.keywords)
        if score > best_score:
            best, best_score = problem, score
    return best
