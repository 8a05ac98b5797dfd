"""Read back the files a rendered boot script writes (`cat > PATH <<DELIMITER ... DELIMITER`).

The plan shows each controller's rendered settings and the infra tests check every rendered controller.yaml and
agent.yaml with the daemons' own `--check`: both take the files from the boot scripts themselves, so they see
exactly what a VM writes. `expand` stands in for the shell: the boot values (`$vm_host`, ...) of an unquoted
here-document are replaced by sample values.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

import yaml

_HEREDOC = re.compile(r"^cat > (?P<path>\S+) <<(?P<quote>'?)(?P<end>[A-Z_]+)'?\n(?P<body>.*?)^(?P=end)$", re.M | re.S)


def files(script: str) -> dict[str, tuple[str, bool]]:
    """Path -> (body, expanded): every here-document the script writes (`expanded`: unquoted delimiter)."""
    return {m["path"]: (m["body"], not m["quote"]) for m in _HEREDOC.finditer(script)}


def expand(body: str, values: Mapping[str, str]) -> str:
    """`$name` of `values` replaced, as the shell expands an unquoted here-document; any other `$` is an error."""
    text = re.sub(r"\$([a-z_]+)\b", lambda m: values.get(m[1], m[0]), body)
    if "$" in text:
        raise ValueError(f"an unexpanded shell value is left: {text[text.index('$'):][:40]!r}")
    return text


def azure_script(user_data_or_custom_data: str) -> str:
    """The boot script inside an Azure VM's userData (base64 of the script) or custom data (a cloud-config)."""
    text = base64.b64decode(user_data_or_custom_data).decode()
    if text.startswith("#cloud-config"):
        document = yaml.safe_load(text)
        return str(document["write_files"][0]["content"])
    return text
