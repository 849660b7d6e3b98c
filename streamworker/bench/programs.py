"""The benchmark's programs: hello world and one CPU-bound program per language, as data.

The CPU-bound program is the same algorithm in every language (count primes below
100,000 by trial division) so its cost differs only by the language, and it prints a
known answer, so a scenario that runs the wrong thing cannot look fast.
"""

from __future__ import annotations

from dataclasses import dataclass

HELLO_OUTPUT = "Hello, World!\n"
PRIMES_BELOW = 100_000
PRIMES_OUTPUT = "9592\n"


@dataclass(frozen=True)
class Program:
    """One benchmark program: a registry language id, its source and the exact stdout."""

    language: str
    kind: str
    source: str
    expected_stdout: str

    @property
    def key(self) -> str:
        return f"{self.language}-{self.kind}"


_PY_CPU = f"""\
count = 0
for k in range(2, {PRIMES_BELOW}):
    d = 2
    while d * d <= k:
        if k % d == 0:
            break
        d += 1
    else:
        count += 1
print(count)
"""

_C_HELLO = '#include <stdio.h>\nint main(void) { puts("Hello, World!"); return 0; }\n'

_C_CPU = f"""\
#include <stdio.h>
int main(void) {{
    long count = 0;
    for (long k = 2; k < {PRIMES_BELOW}; k++) {{
        int prime = 1;
        for (long d = 2; d * d <= k; d++) {{
            if (k % d == 0) {{ prime = 0; break; }}
        }}
        count += prime;
    }}
    printf("%ld\\n", count);
    return 0;
}}
"""

_JAVA_HELLO = """\
public class Main {
    public static void main(String[] args) { System.out.println("Hello, World!"); }
}
"""

_JAVA_CPU = f"""\
public class Main {{
    public static void main(String[] args) {{
        long count = 0;
        for (long k = 2; k < {PRIMES_BELOW}; k++) {{
            boolean prime = true;
            for (long d = 2; d * d <= k; d++) {{
                if (k % d == 0) {{ prime = false; break; }}
            }}
            if (prime) count++;
        }}
        System.out.println(count);
    }}
}}
"""

PROGRAMS: tuple[Program, ...] = (
    Program("python", "hello", 'print("Hello, World!")\n', HELLO_OUTPUT),
    Program("python", "cpu", _PY_CPU, PRIMES_OUTPUT),
    Program("c", "hello", _C_HELLO, HELLO_OUTPUT),
    Program("c", "cpu", _C_CPU, PRIMES_OUTPUT),
    Program("java", "hello", _JAVA_HELLO, HELLO_OUTPUT),
    Program("java", "cpu", _JAVA_CPU, PRIMES_OUTPUT),
)


def select_programs(languages: tuple[str, ...], kinds: tuple[str, ...]) -> list[Program]:
    """The programs for these languages and kinds, in the fixed table order."""
    chosen = [p for p in PROGRAMS if p.language in languages and p.kind in kinds]
    if not chosen:
        raise ValueError(f"no benchmark program for languages {languages} and kinds {kinds}")
    return chosen
