/* test_jinja.c: unit tests for the Jinja interpreter (src/text/jinja_*.c, chat_template.c).
 *
 * - ref_cases: small templates over two fixed contexts, each with the text
 *   Jinja2 3.1 (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
 *   loop controls) rendered, or NULL where Jinja2 raised. The table was
 *   produced by running the reference engine on the same inputs. After every
 *   render the memory accounting must be back to zero (nothing leaked).
 * - parse errors: reported at load with line and column.
 * - runtime errors: raise_exception's message verbatim, undefined names.
 * - hostile templates: deep recursion, range(10**9), exponential string
 *   growth, quadratic copying, runaway output, deep nesting; each must stop
 *   with CIT_ERR_LIMIT in bounded time (printed) and memory.
 * - the public API: chat rendering, the fallback, GGUF loading, NULL frees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "citadel/gguf.h"
#include "citadel/template.h"
#include "support.h"
#include "text/jinja_internal.h"

struct ref_case {
    const char *tpl;
    const char *ctx;
    const char *want; /* NULL: Jinja2 raised an error */
};

/* generated: 138 cases */
static const char CTX_A[] = "{\"y\": null, \"s\": \"Hello World\", \"n\": 5, \"f\": 2.5, \"l\": [3, 1, 2], \"d\": {\"b\": 1, \"a\": \"x<y>&'z'\", \"c\": [1, {\"k\": null}]}, \"msgs\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U1\"}, {\"role\": \"assistant\", \"content\": \"A1\"}, {\"role\": \"user\", \"content\": \"U2\"}], \"u\": \"\\u00dcn\\u00efc\\u00f8d\\u00e9 \\u201cq\\u201d \\u00e9\\ud83d\\ude00\", \"ws\": \"  \\t a b \\n c  \\u00a0\", \"t\": true, \"e\": \"\", \"nl\": \"a\\nb\\r\\nc\\n\", \"neg\": -7}";
static const char CTX_B[] = "{\"s\": \"a<b>&'c\\\"\", \"l\": [1, 2], \"d\": {\"k\": \"v<\", \"n\": 1}, \"msgs\": [{\"role\": \"user\", \"content\": \"x\"}], \"e\": []}";
static const struct ref_case ref_cases[] = {
    {"{% for i in [1,2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}",
     CTX_A, "[]"},
    {"{% set x = 5 %}{% for i in [1,2] %}[{{ x }}]{% set x = i %}{% endfor %}{{x}}",
     CTX_A, "[5][5]5"},
    {"{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}",
     CTX_A, "2"},
    {"{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}",
     CTX_A, "2"},
    {"{% for i in [1] %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %}",
     CTX_A, "1"},
    {"{{ 'x' in y }}",
     CTX_A, NULL},
    {"{{ 'x' in zz }}",
     CTX_A, "False"},
    {"{{ [1, 'a', none, true, 1.5, {'k': 'v\\'\"'}] }}",
     CTX_A, "[1, 'a', None, True, 1.5, {'k': 'v\\'\"'}]"},
    {"{{ (1,2) }}{{ {'a':(1,)} }}{{ () }}",
     CTX_A, "(1, 2){'a': (1,)}()"},
    {"{{ 1/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2**10 }} {{ 2**-1 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 3.0 }} {{ 1.5e-7 }} {{ 123456789.125 }}",
     CTX_A, "0.5 3 -4 2 -2 1024 0.5 1e+20 1e+16 1000000000000000.0 0.0001 1e-05 3.0 1.5e-07 123456789.125"},
    {"{{ 7.5 // 2 }} {{ -7.5 // 2 }} {{ 7.5 % 2 }} {{ -7.5 % 2 }} {{ 0.1 + 0.2 }} {{ 1/3 }} {{ 2/3 }} {{ 10/4 }}",
     CTX_A, "3.0 -4.0 1.5 0.5 0.30000000000000004 0.3333333333333333 0.6666666666666666 2.5"},
    {"{{ 'abc'[1:] }}{{ 'abc'[-1] }}{{ 'abc'[::-1] }}{{ u[1:4] }}{{ u[::-2] }}{{ l[::-1] }}{{ l[5:] }}{{ l[-10:2] }}{{ s[2:-2] }}",
     CTX_A, "bcccban\303\257c\360\237\230\200 q dcn[2, 1, 3][][3, 1]llo Wor"},
    {"{{ x.y }}",
     CTX_A, NULL},
    {"{{ {}.y }}|{{ {}.y is defined }}",
     CTX_A, "|False"},
    {"{{ 'a' ~ none ~ 1 ~ undefinedvar ~ true ~ 1.0 ~ l ~ d }}",
     CTX_A, "aNone1True1.0[3, 1, 2]{'b': 1, 'a': \"x<y>&'z'\", 'c': [1, {'k': None}]}"},
    {"{{ ['b','a'] | tojson }}{{ d | tojson }}{{ d | tojson(indent=2) }}{{ u|tojson }}{{ msgs|tojson(indent=4) }}",
     CTX_A, "[\"b\", \"a\"]{\"a\": \"x\\u003cy\\u003e\\u0026\\u0027z\\u0027\", \"b\": 1, \"c\": [1, {\"k\": null}]}{\n  \"a\": \"x\\u003cy\\u003e\\u0026\\u0027z\\u0027\",\n  \"b\": 1,\n  \"c\": [\n    1,\n    {\n      \"k\": null\n    }\n  ]\n}\"\\u00dcn\\u00efc\\u00f8d\\u00e9 \\u201cq\\u201d \\u00e9\\ud83d\\ude00\"[\n    {\n        \"content\": \"S\",\n        \"role\": \"system\"\n    },\n    {\n        \"content\": \"U1\",\n        \"role\": \"user\"\n    },\n    {\n        \"content\": \"A1\",\n        \"role\": \"assistant\"\n    },\n    {\n        \"content\": \"U2\",\n        \"role\": \"user\"\n    }\n]"},
    {"{{ u|length }}{{ u|upper }}{{ u|lower }}{{ '\303\237'|upper }}",
     CTX_A, "14\303\234N\303\217C\303\230D\303\211 \342\200\234Q\342\200\235 \303\211\360\237\230\200\303\274n\303\257c\303\270d\303\251 \342\200\234q\342\200\235 \303\251\360\237\230\200SS"},
    {"{{ l|join(', ') }}|{{ 'abc'|list }}|{{ d|items|list }}|{{ d|join('-') }}",
     CTX_A, "3, 1, 2|['a', 'b', 'c']|[('b', 1), ('a', \"x<y>&'z'\"), ('c', [1, {'k': None}])]|b-a-c"},
    {"{% set ns = namespace(a=1) %}{{ ns }}{% set ns.b = [ns.a] %}{{ ns.b }}",
     CTX_A, "<Namespace {'a': 1}>[1]"},
    {"{% for a in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('x','y') }}|{% endfor %}",
     CTX_A, "10TrueFalse3322x|21FalseFalse32113y|32FalseTrue3102x|"},
    {"{% for a in [] %}x{% else %}empty{% endfor %}{% for a in [1] %}x{% else %}empty{% endfor %}",
     CTX_A, "emptyx"},
    {"{{ undefinedvar + 'a' }}",
     CTX_A, NULL},
    {"{{ none + 'a' }}",
     CTX_A, NULL},
    {"{{ 'a' + 1 }}",
     CTX_A, NULL},
    {"{{ [1] + 'a' }}",
     CTX_A, NULL},
    {"{{ raise_exception('boom ' ~ 1) }}",
     CTX_A, NULL},
    {"{{ 'a b  c'.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a,b,,c'.split(',', 1) }}{{ 'a,b,,c'.rsplit(',', 1) }}{{ '  x '.strip() }}{{ 'xax'.strip('x') }}{{ ws.split() }}{{ ws.strip() }}{{ ws.split(None, 1) }}{{ ws.rsplit(None, 1) }}",
     CTX_A, "['a', 'b', 'c']['a', 'b', '', 'c']['a', 'b,,c']['a,b,', 'c']xa['a', 'b', 'c']a b \n c['a', 'b \\n c  \\xa0']['  \\t a b', 'c']"},
    {"{{ 'Hello World'|title }}{{ 'hello WORLD-foo(bar'|title }}{{ 'hello WORLD'|capitalize }}{{ \"they're bill's\".title() }}",
     CTX_A, "Hello WorldHello World-Foo(BarHello worldThey'Re Bill'S"},
    {"{{ [3,1,2]|sort }}{{ ['b','A','a']|unique|list }}{{ [1,2]|reverse|list }}{{ ['b','A','c']|sort }}{{ ['b','A','c']|sort(case_sensitive=true) }}{{ msgs|sort(attribute='role')|map(attribute='content')|join }}",
     CTX_A, "[1, 2, 3]['b', 'A'][2, 1]['A', 'b', 'c']['A', 'b', 'c']A1SU1U2"},
    {"{{ 'a\nb'|indent(2) }}|{{ 'a\n\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'a\nb\n'|indent(4) }}|{{ ''|indent }}|{{ nl|indent('>') }}",
     CTX_A, "a\n  b|  a\n\n  b|a\n  \n  b|a\n    b\n||a\n>b\n>c\n"},
    {"{{ 1 == 1.0 }}{{ 1 < 2.5 }}{{ 'a' < 'b' }}{{ [1] == [1] }}{{ none == none }}{{ x == zz }}{{ (1,2) == [1,2] }}{{ {'a':1} == {'a':1} }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}",
     CTX_A, "TrueTrueTrueTrueTrueTrueFalseTrueTrueFalse"},
    {"{{ true + 1 }}{{ 5 * 'ab' }}{{ 'ab' * 2 }}{{ [1]*3 }}{{ 'x' * -1 }}",
     CTX_A, "2ababababababab[1, 1, 1]"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% for k, v in d.items() %}{{k}}={{v}};{% endfor %}",
     CTX_A, "12b=1;a=x<y>&'z';c=[1, {'k': None}];"},
    {"{{ d.get('b', 3) }}{{ d.get('zz', 3) }}{{ d.get('zz') }}{{ d.keys()|list }}{{ d.values()|list }}",
     CTX_A, "13None['b', 'a', 'c'][1, \"x<y>&'z'\", [1, {'k': None}]]"},
    {"{{ 1 if false }}|{{ (1 if false) is defined }}|{{ 1 if true else 2 }}{{ 'a' if none else 'b' if 0 else 'c' }}",
     CTX_A, "|False|1c"},
    {"{{ x|default('d') }}{{ ''|default('e') }}{{ ''|default('e', true) }}{{ none|default('n') }}{{ zz|d('q') }}",
     CTX_A, "deNoneq"},
    {"{{ none|string }}{{ 3|string }}{{ '42'|int + 1 }}{{ '4.7'|int }}{{ 'x'|int }}{{ 3.9|int }}{{ ' 12 '|int }}{{ '1_000'|int }}{{ '0x1f'|int(base=16) }}{{ 'x'|int(7) }}{{ '3.5'|float }}{{ 'x'|float }}{{ 2|float }}",
     CTX_A, "None3434031210003173.50.02.0"},
    {"{{ [1,2]|first }}{{ [1,2]|last }}{{ []|first }}{{ 'abc'|first }}{{ 'abc'|last }}{{ d|first }}",
     CTX_A, "12acb"},
    {"{{ zz|length }}{{ zz|trim }}{{ zz|upper }}|{{ zz|join }}|{{ zz|list }}{{ zz|items|list }}",
     CTX_A, "0||[][]"},
    {"{{ zz|tojson }}",
     CTX_A, NULL},
    {"{{ 'a' is string }}{{ zz is iterable }}{{ zz is sequence }}{{ {} is sequence }}{{ 1 is number }}{{ true is integer }}{{ true is number }}{{ d is mapping }}{{ l is iterable }}{{ n is odd }}{{ n is even }}{{ 10 is divisibleby 5 }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ none is none }}{{ 1 is sameas 1 }}{{ none is sameas none }}",
     CTX_A, "TrueTrueTrueTrueTrueFalseTrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrue"},
    {"{{ range(100001)|length }}",
     CTX_A, NULL},
    {"{{ 'abc'.upper() }}{{ 'abc'.title() }}{{ 'x'.replace('', '-') }}{{ 'aaa'.replace('a', 'b', 2) }}{{ s.replace('o', '0') }}{{ s|replace('l', 'L', 1) }}",
     CTX_A, "ABCAbc-x-bbaHell0 W0rldHeLlo World"},
    {"{{ 3.5|round }}{{ 2.5|round }}{{ -0.0 }}{{ 2.675|round(2) }}{{ 3|round }}{{ 3.14159|round(3, 'floor') }}{{ 3.14159|round(1, 'ceil') }}",
     CTX_A, "4.02.0-0.02.6733.1413.2"},
    {"{{ [1,2,3][-1] }}{{ [1,2,3][5] }}|{{ [1,2,3][1:2] }}{{ l[0] }}{{ msgs[0].role }}{{ msgs[0]['content'] }}{{ msgs.0.role }}",
     CTX_A, "3|[2]3systemSsystem"},
    {"{{ 'abc'.startswith(('x','a')) }}{{ 'a.b.c'.rsplit('.', 1) }}{{ s.endswith('ld') }}{{ s.find('o') }}{{ s.rfind('o') }}{{ s.count('l') }}{{ u.find('\303\251') }}{{ s.index('W') }}",
     CTX_A, "True['a.b', 'c']True47366"},
    {"{%- if true -%}\n  a\n{%- endif -%}\n b",
     CTX_A, "ab"},
    {"  {% if true %}\n  x\n  {% endif %}\n  y\n{# comment #}\n  z {#- c -#}  w\n",
     CTX_A, "  x\n  y\n  zw"},
    {"a  {%+ if true %}b{% endif +%}\nc",
     CTX_A, "a  b\nc"},
    {"{% raw %}{{ x }}{% endraw %}|{%- raw -%}  {{y}}  {%- endraw -%}  |",
     CTX_A, "{{ x }}|{{y}}|"},
    {"{{ '\\x41\\u00e9\\n\\t\\\\\\'\\d' }}|{{ \"a\" 'b' \"c\" }}",
     CTX_A, "A\303\251\n\t\\'\\d|abc"},
    {"{% set x %}hello {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}",
     CTX_A, "[hello 2]ABC"},
    {"{% filter upper %}abc{{ 'def' }}{% endfilter %}{% filter trim|upper %}  x  {% endfilter %}",
     CTX_A, "ABCDEFX"},
    {"{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 3) }}|{{ m(1, c='z') }}|{{ m() }}",
     CTX_A, "1-2-x|1-3-x|1-2-z|-2-x"},
    {"{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}",
     CTX_A, NULL},
    {"{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=2) }}",
     CTX_A, NULL},
    {"{% macro m(a) %}[{{ caller(a) }}]{% endmacro %}{% call(x) m(5) %}got {{ x }}{% endcall %}",
     CTX_A, "[got 5]"},
    {"{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
     CTX_A, "54321"},
    {"{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     CTX_A, "0134"},
    {"{% for m in msgs if m.role != 'system' %}{{ loop.index }}{{ m.role }}{{ loop.last }} {% endfor %}",
     CTX_A, "1userFalse 2assistantFalse 3userTrue "},
    {"{% for k in d %}{{ k }}{% endfor %}{% for c in 'ab' %}{{ c }}{% endfor %}{% for x in zz %}never{% endfor %}",
     CTX_A, "bacab"},
    {"{% for x in none %}{% endfor %}",
     CTX_A, NULL},
    {"{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }}{{ msgs|rejectattr('role', 'eq', 'user')|list|length }}{{ [1,0,2,none]|select|list }}{{ [1,2,3,4]|select('odd')|list }}{{ [1,2,3]|reject('even')|list }}{{ msgs|selectattr('nope')|list }}{{ msgs|selectattr('role', 'defined')|list|length }}",
     CTX_A, "['U1', 'U2']2[1, 2][1, 3][1, 3][]4"},
    {"{{ ['a','B']|map('upper')|list }}{{ msgs|map(attribute='zz', default='D')|list }}{{ [' a ']|map('trim')|join }}{{ [1,2]|map('string')|join('+') }}",
     CTX_A, "['A', 'B']['D', 'D', 'D', 'D']a1+2"},
    {"{{ [3,1,2]|max }}{{ [3,1,2]|min }}{{ [1,2,3]|sum }}{{ msgs|map(attribute='content')|sum(start='') }}{{ ['a','B']|max }}{{ [-3]|map('abs')|list }}",
     CTX_A, NULL},
    {"{{ 'a  b c'|wordcount }}{{ 'x'|center(5) }}|{{ '<a&b>'|e }}{{ '<a>'|escape }}",
     CTX_A, "3  x  |&lt;a&amp;b&gt;&lt;a&gt;"},
    {"{{ d|dictsort }}{{ d|dictsort(reverse=true) }}",
     CTX_A, "[('a', \"x<y>&'z'\"), ('b', 1), ('c', [1, {'k': None}])][('c', [1, {'k': None}]), ('b', 1), ('a', \"x<y>&'z'\")]"},
    {"{% set ns = namespace(items=[]) %}{% for m in msgs %}{% set ns.items = ns.items + [m.role] %}{% endfor %}{{ ns.items|join(',') }}",
     CTX_A, "system,user,assistant,user"},
    {"{% set ns = namespace() %}{% set ns.x = 1 %}{{ ns.x }}{{ ns['x'] }}{{ ns.zz is defined }}",
     CTX_A, "11False"},
    {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }}",
     CTX_A, "3False"},
    {"{{ 'a' if 'x' in 'xyz' }}{{ 'b' if 'q' not in 'xyz' }}{{ 1 in [1,2] }}{{ 'a' in d }}{{ 'zz' in d }}{{ not 1 in [2] }}",
     CTX_A, "abTrueTrueFalseTrue"},
    {"{{ -n }}{{ +n }}{{ - 2 ** 2 }}{{ (-2) ** 2 }}{{ 2 ** 3 ** 2 }}{{ neg|abs }}{{ 10 - 2 - 3 }}{{ 2 * 3 + 4 }}{{ 2 + 3 * 4 }}{{ 'a' ~ 1 + 2 }}",
     CTX_A, NULL},
    {"{{ n > 3 and 'yes' or 'no' }}{{ 0 or '' or 'last' }}{{ 1 and 0 }}{{ none or zz }}|{{ not none }}{{ not 'a' }}",
     CTX_A, "yeslast0|TrueFalse"},
    {"{{ s|truncate(5) }}",
     CTX_A, "He..."},
    {"{{ strftime_now('%Y-%m-%d %H:%M:%S %b %B %a %A %d %j %I %p %y') }}",
     CTX_A, "2026-01-02 03:04:05 Jan January Fri Friday 02 002 03 AM 26"},
    {"{{ 'x' | lower | upper | trim }}{{ ('a' ~ 'b')|upper }}{{ -1|abs }}",
     CTX_A, "XAB1"},
    {"{{ nl.splitlines() }}{{ 'abc'.isdigit() }}{{ '123'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ ','.join(['a','b']) }}{{ '{} and {}'.format(1, 'x') }}{{ '{0}{b}'.format(1, b=2) }}",
     CTX_A, "['a', 'b', 'c']FalseTrueTrueTruea,b1 and x12"},
    {"{{ u|tojson }}{{ '\\u2028\\x00\\x1f\\x7f'|tojson }}{{ [1.0, 1e20, -0.5, true, none]|tojson }}{{ {1: 'a', 'b': 2}|tojson }}",
     CTX_A, NULL},
    {"{{ d['c'][1]['k'] }}{{ d.c.1.k }}{{ d['nokey'] }}{{ l['x'] }}{{ s.nope }}",
     CTX_A, "NoneNone"},
    {"{{ msgs[10].role }}",
     CTX_A, NULL},
    {"{{ (l + [4])|length }}{{ l|length }}{{ s|length }}{{ d|length }}{{ l|count }}",
     CTX_A, "431133"},
    {"{{ l.index(1) }}{{ l.count(3) }}",
     CTX_A, "11"},
    {"{{ l.append }}",
     CTX_A, ""},
    {"{{ l.append(4) }}",
     CTX_A, NULL},
    {"{{ s.__class__ }}",
     CTX_A, ""},
    {"{{ 5 / 0 }}",
     CTX_A, NULL},
    {"{{ 5 // 0 }}",
     CTX_A, NULL},
    {"{{ 'a' < 1 }}",
     CTX_A, NULL},
    {"{{ d < d }}",
     CTX_A, NULL},
    {"{{ tojson }}",
     CTX_A, ""},
    {"{{ foo(1) }}",
     CTX_A, NULL},
    {"{{ s() }}",
     CTX_A, NULL},
    {"{% for a, b in [[1,2],[3,4]] %}{{a}}{{b}}{% endfor %}{% for a, b in ['xy'] %}{{a}}{{b}}{% endfor %}",
     CTX_A, "1234xy"},
    {"{% for a, b in [[1,2,3]] %}{% endfor %}",
     CTX_A, NULL},
    {"{{ ' x ' | trim('x ') }}{{ 'xxaxx'|trim('x') }}",
     CTX_A, "a"},
    {"{{ u|reverse }}{{ l|reverse|list }}",
     CTX_A, "\360\237\230\200\303\251 \342\200\235q\342\200\234 \303\251d\303\270c\303\257n\303\234[2, 1, 3]"},
    {"{{ true }}{{ True }}{{ false }}{{ none }}{{ None }}",
     CTX_A, "TrueTrueFalseNoneNone"},
    {"{{ 0x1F }}{{ 0o17 }}{{ 0b101 }}{{ 1_000 }}{{ 1.5e3 }}{{ 1E-2 }}",
     CTX_A, "3115510001500.00.01"},
    {"{% set a = [1, 2,] %}{{ a }}{% set b = {'x': 1,} %}{{ b }}",
     CTX_A, "[1, 2]{'x': 1}"},
    {"{{ msgs[0]|items|list }}",
     CTX_A, "[('role', 'system'), ('content', 'S')]"},
    {"{{ s|first|lower }}{{ s[0:5]|upper }}",
     CTX_A, "hHELLO"},
    {"{{ 'a' is in 'abc' }}{{ 3 is ge 2 }}{{ 3 is lt 2 }}{{ 'a' is equalto 'a' }}{{ 1 is ne 1 }}",
     CTX_A, "TrueTrueFalseTrueFalse"},
    {"{% if zz is not defined and y is none %}ok{% endif %}{% if not zz %}ok2{% endif %}",
     CTX_A, "okok2"},
    {"{{ d|list }}{{ d.items()|list|length }}",
     CTX_A, "['b', 'a', 'c']3"},
    {"{%- for m in msgs -%}\n  {%- if loop.first -%}\n    F\n  {%- endif %}\n  {{ m.role }}\n{%- endfor %}\n",
     CTX_A, "F  system  user  assistant  user"},
    {"{{- 'a' -}}   \n\n   {{- 'b' }}   {{ 'c' -}}   d",
     CTX_A, "ab   cd"},
    {"x\n{% if true %}\ny\n{% endif %}\nz\n",
     CTX_A, "x\ny\nz"},
    {"{% if true %}  a  {% endif %}  \n  {%- if true %} b{% endif %}",
     CTX_A, "  a   b"},
    {"   {#- comment #}x{# c2 -#}   \n y",
     CTX_A, "xy"},
    {"\t{% for i in [1,2] %}\n\t{{ i }}\n\t{% endfor %}\n",
     CTX_A, "\t1\n\t2\n"},
    {"line1\r\nline2\r{% if true %}\r\nX{% endif %}\n\n",
     CTX_A, "line1\nline2\nX"},
    {"{{ 'trailing' }}\n",
     CTX_A, "trailing"},
    {"{{ s | replace(' ', '_') | lower }}",
     CTX_A, "hello_world"},
    {"{{ 'a%sb'|format('X') }}{{ '%d-%s'|format(3, 'y') }}",
     CTX_A, "aXb3-y"},
    {"{{ '%05.1f|%x|%r'|format(3.14159, 255, 'q') }}",
     CTX_A, "003.1|ff|'q'"},
    {"{{ u.upper() }}{{ '\304\260'.lower() }}{{ '\307\205'.lower() }}",
     CTX_A, "\303\234N\303\217C\303\230D\303\211 \342\200\234Q\342\200\235 \303\211\360\237\230\200i\314\207\307\206"},
    {"{{ [('a', 1), ('b', 2)]|map('first')|list }}",
     CTX_A, "['a', 'b']"},
    {"{{ [{'a': {'b': 1}}, {'a': {'b': 0}}]|selectattr('a.b')|list }}",
     CTX_A, "[{'a': {'b': 1}}]"},
    {"{{ ['x', 'y']|batch(1)|list }}",
     CTX_A, "[['x'], ['y']]"},
    {"{{ 'x' + s|tojson }}|{{ s|tojson + 'y<' }}|{{ ('<' ~ s)|safe + '>' }}|{{ '<'|safe + '>'|safe }}",
     CTX_B, "x\"a\\u003cb\\u003e\\u0026\\u0027c\\\"\"|\"a\\u003cb\\u003e\\u0026\\u0027c\\\"\"y&lt;|<a<b>&'c\"&gt;|<>"},
    {"{{ (s|safe).upper() }}|{{ (s|safe).replace('<', '[<]') }}|{{ (s|safe).split('&') }}|{{ ('x'|safe).join(['<', '>']) }}|{{ ('{}<'|safe).format('<') }}",
     CTX_B, "A<B>&'C\"|a[&lt;]b>&'c\"|[Markup('a<b>'), Markup('\\'c\"')]|&lt;x&gt;|&lt;<"},
    {"{{ s|e }}|{{ s|e|e }}|{{ (s|e)|length }}|{{ 5|safe }}|{{ none|e }}|{{ zz|e }}",
     CTX_B, "a&lt;b&gt;&amp;&#39;c&#34;|a&lt;b&gt;&amp;&#39;c&#34;|26|5|None|"},
    {"{{ ('%s<'|safe) % '<' }}|{{ ('%s-%s'|safe) % ('<', 2) }}|{{ s|safe|upper }}|{{ s|safe|trim }}|{{ (s|safe)[0:2] + '<' }}|{{ s|safe ~ '<' }}",
     CTX_B, "&lt;<|&lt;-2|A<B>&'C\"|a<b>&'c\"|a<&lt;|a<b>&'c\"<"},
    {"{{ [s|safe] }}|{{ s|safe|replace('a','<') + '<' }}|{{ s|safe|join('<') + '<' }}",
     CTX_B, "[Markup('a<b>&\\'c\"')]|<<b>&'c\"<|a<<<b<><&<'<c<\"<"},
    {"{{ (s|safe) * 2 + '&' }}|{{ s|safe|string + '&' }}|{{ s|safe|indent(2) + '&' }}|{{ s|safe|title + '&' }}|{{ s|safe|capitalize + '&' }}",
     CTX_B, "a<b>&'c\"a<b>&'c\"&amp;|a<b>&'c\"&amp;|a<b>&'c\"&amp;|A<B>&'c\"&|A<b>&'c\"&amp;"},
    {"{% set x = s|safe %}{% macro m() %}{{ x }}{% endmacro %}{{ m() + '<' }}|{% set y %}{{ x }}{% endset %}{{ y + '<' }}",
     CTX_B, "a<b>&'c\"<|a<b>&'c\"<"},
    {"{{ l|map('string')|list }}{{ l|select|list|length }}{% if e|select %}T{% else %}F{% endif %}{% if e|list %}T{% else %}F{% endif %}",
     CTX_B, "['1', '2']2TF"},
    {"{{ l|select|length }}",
     CTX_B, NULL},
    {"{{ l|map('string')|last }}",
     CTX_B, NULL},
    {"{{ (l|map('string'))[0] }}|{{ d.items() }}|{{ d.keys() }}|{{ d.values() }}|{{ d.items()|list }}|{{ d.keys()[0] }}|{{ d.items()|length }}",
     CTX_B, "|dict_items([('k', 'v<'), ('n', 1)])|dict_keys(['k', 'n'])|dict_values(['v<', 1])|[('k', 'v<'), ('n', 1)]||2"},
    {"{{ d.items()|tojson }}",
     CTX_B, NULL},
    {"{{ l|reverse|list }}{{ l|map('string')|reverse|list }}{{ l|reverse|length }}",
     CTX_B, NULL},
    {"{{ l|unique|list }}{{ d|items|list }}{{ (d|items|list)[0] }}{{ l|select is iterable }}{{ l|select is sequence }}{{ d.keys() is sequence }}",
     CTX_B, "[1, 2][('k', 'v<'), ('n', 1)]('k', 'v<')TrueFalseFalse"},
    {"{{ (l|select) == (l|select) }}{{ l|select|first }}",
     CTX_B, "False1"},
    {"{{ msgs|selectattr('role', 'equalto', 'user')|first }}",
     CTX_B, "{'role': 'user', 'content': 'x'}"},
    {"{% for a, b in d.items() %}{{ a }}{{ b }}{% endfor %}{% for x in l|select %}{{ loop.length }}{% endfor %}",
     CTX_B, "kv<n122"},
    {"{{ l + (l|select|list) }}",
     CTX_B, "[1, 2, 1, 2]"},
    {"{{ 'a' if e|select else 'b' }}",
     CTX_B, "a"},
};

static void fixed_opts(struct cit_template_options *o)
{
    cit_template_options_default(o);
    struct tm tm = {.tm_year = 2026 - 1900, .tm_mon = 0, .tm_mday = 2, .tm_hour = 3, .tm_min = 4, .tm_sec = 5};
    o->now = (int64_t)timegm(&tm);
}

/* Parses and renders src over the JSON context ctx; checks the budget accounting drained. */
static enum cit_status run(const char *src, const char *ctx, const struct cit_template_options *opts, char **out,
                           size_t *outlen, char *err, size_t errlen)
{
    struct jtpl *t = NULL;
    *out = NULL;
    *outlen = 0;
    err[0] = '\0';
    enum cit_status st = jparse(src, strlen(src), &t, err, errlen);
    if (st != CIT_OK)
        return st;
    json_error_t je;
    json_t *vars = ctx ? json_loads(ctx, 0, &je) : NULL;
    if (ctx && !vars) {
        fprintf(stderr, "bad test context: %s\n", je.text);
        fail();
    }
    struct cit_template_options def;
    if (!opts) {
        fixed_opts(&def);
        opts = &def;
    }
    size_t left = 1;
    jrender_json(t, vars, opts, out, outlen, &left, &st, err, errlen);
    if (left != 0)
        fprintf(stderr, "accounting left %zu bytes after: %s\n", left, src);
    assert_int_equal(left, 0);
    json_decref(vars);
    jtpl_free(t);
    return st;
}

static void test_reference_cases(void **state)
{
    (void)state;
    size_t n = sizeof ref_cases / sizeof ref_cases[0], ok = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ref_case *c = &ref_cases[i];
        char *out, err[512];
        size_t len;
        enum cit_status st = run(c->tpl, c->ctx, NULL, &out, &len, err, sizeof err);
        bool good;
        if (c->want)
            good = st == CIT_OK && len == strlen(c->want) && memcmp(out, c->want, len) == 0;
        else
            good = st != CIT_OK && out == NULL && strncmp(err, "template", 8) == 0;
        if (!good)
            fprintf(stderr, "case %zu: %s\n  want: %s\n  got:  %s (status %d: %s)\n", i, c->tpl,
                    c->want ? c->want : "(an error)", out ? out : "(none)", st, err);
        ok += good;
        free(out);
    }
    printf("reference cases: %zu/%zu\n", ok, n);
    assert_int_equal(ok, n);
}

struct err_case {
    const char *tpl;
    enum cit_status st;
    const char *msg; /* must appear in the error */
};

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct err_case cases[] = {
        {"{% for x in y %}", CIT_ERR_FORMAT, "line 1, column 17: unexpected end of template, expected 'endfor'"},
        {"a\n  {{ 1 + }}", CIT_ERR_FORMAT, "line 2, column 10: unexpected end of print statement"},
        {"{{ x | nosuch }}", CIT_ERR_UNSUPPORTED, "no filter named 'nosuch'"},
        {"{{ x is nosuch }}", CIT_ERR_UNSUPPORTED, "no test named 'nosuch'"},
        {"{% include 'x.j2' %}", CIT_ERR_UNSUPPORTED, "'include' is not supported"},
        {"{% extends 'base' %}", CIT_ERR_UNSUPPORTED, "'extends' is not supported"},
        {"{% import 'm' as m %}", CIT_ERR_UNSUPPORTED, "'import' is not supported"},
        {"{% for x in y recursive %}{% endfor %}", CIT_ERR_UNSUPPORTED, "recursive loops"},
        {"{{ f(*args) }}", CIT_ERR_UNSUPPORTED, "*args"},
        {"{{ 'abc }}", CIT_ERR_FORMAT, "unterminated string"},
        {"x {# never closed", CIT_ERR_FORMAT, "line 1, column 3: missing end of comment tag"},
        {"{% break %}", CIT_ERR_FORMAT, "'break' outside of a loop"},
        {"{% for i in x %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}", CIT_ERR_FORMAT, "outside of a loop"},
        {"{% macro m(a=1, b) %}{% endmacro %}", CIT_ERR_FORMAT, "non-default argument"},
        {"{% if x %}{% endfor %}", CIT_ERR_FORMAT, "unknown tag 'endfor'"},
        {"{% frobnicate %}", CIT_ERR_FORMAT, "unknown tag 'frobnicate'"},
        {"{{ (1, 2 }}", CIT_ERR_FORMAT, "unexpected"},
        {"{{ [1, 2) }}", CIT_ERR_FORMAT, "unexpected ')', expected ']'"},
        {"{{ x @ y }}", CIT_ERR_FORMAT, "unexpected char '@'"},
        {"{{ 99999999999999999999 }}", CIT_ERR_UNSUPPORTED, "integer literal too large"},
        {"{{ '\\N{BULLET}' }}", CIT_ERR_UNSUPPORTED, "\\N{...}"},
        {"{{ x is defined is defined }}", CIT_ERR_FORMAT, "chain"},
        {"{% set 1 = 2 %}", CIT_ERR_FORMAT, "can't assign"},
        {"{% raw %} never ends", CIT_ERR_FORMAT, "missing end of raw directive"},
        {"{{ 1 }", CIT_ERR_FORMAT, "unexpected '}'"},
        {"\xff\xfe{{ x }}", CIT_ERR_FORMAT, "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cit_template *t = NULL;
        char err[512] = "";
        enum cit_status st = cit_template_parse(cases[i].tpl, strlen(cases[i].tpl), &t, err, sizeof err);
        if (st != cases[i].st || !strstr(err, cases[i].msg))
            fprintf(stderr, "parse case %zu (%s): status %d, message: %s\n", i, cases[i].tpl, st, err);
        assert_int_equal(st, cases[i].st);
        assert_non_null(strstr(err, cases[i].msg));
        assert_null(t);
    }
}

static void test_runtime_errors(void **state)
{
    (void)state;
    static const struct err_case cases[] = {
        {"x\n  {{ raise_exception('Conversation roles must alternate user/assistant') }}", CIT_ERR_INVALID_ARG,
         "template line 2, column 6: Conversation roles must alternate user/assistant"},
        {"{{ 'a' + nope }}", CIT_ERR_NOT_FOUND, "'nope' is undefined"},
        {"{{ nope.attr }}", CIT_ERR_NOT_FOUND, "'nope' is undefined"},
        {"{{ {}.a.b }}", CIT_ERR_NOT_FOUND, "'dict object' has no attribute 'a'"},
        {"{{ 'a' + 1 }}", CIT_ERR_TYPE, "can only concatenate str (not \"int\") to str"},
        {"{{ 1 / 0 }}", CIT_ERR_RANGE, "division by zero"},
        {"{{ 9223372036854775807 + 1 }}", CIT_ERR_RANGE, "integer overflow"},
        {"{{ 2 ** 64 }}", CIT_ERR_RANGE, "integer overflow"},
        {"{% for x in none %}{% endfor %}", CIT_ERR_TYPE, "'NoneType' object is not iterable"},
        {"{{ none|tojson }}{{ nope|tojson }}", CIT_ERR_TYPE, "Undefined is not JSON serializable"},
        {"{{ [1].append(2) }}", CIT_ERR_NOT_FOUND, "unsafe"},
        {"{{ ''.__class__() }}", CIT_ERR_NOT_FOUND, "unsafe"},
        {"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", CIT_ERR_TYPE, "takes not more than 1 argument"},
        {"{% set a, b = [1] %}", CIT_ERR_TYPE, "not enough values to unpack"},
        {"{% set x = 1 %}{% set x.y = 2 %}", CIT_ERR_TYPE, "non-namespace"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, err[512];
        size_t len;
        enum cit_status st = run(cases[i].tpl, NULL, NULL, &out, &len, err, sizeof err);
        if (st != cases[i].st || !strstr(err, cases[i].msg))
            fprintf(stderr, "runtime case %zu (%s): status %d, message: %s\n", i, cases[i].tpl, st, err);
        assert_int_equal(st, cases[i].st);
        assert_non_null(strstr(err, cases[i].msg));
        assert_null(out);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each hostile template must stop with CIT_ERR_LIMIT (naming the budget) in bounded time. */
static void test_hostile(void **state)
{
    (void)state;
    static const struct err_case cases[] = {
        {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", CIT_ERR_LIMIT, "recursion depth"},
        {"{% for i in range(10**9) %}x{% endfor %}", CIT_ERR_LIMIT, "range too big"},
        {"{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
         CIT_ERR_LIMIT, "limit"},
        {"{% macro d(s, n) %}{% if n %}{{ d(s + s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d('ab', 60) }}",
         CIT_ERR_LIMIT, "limit"},
        {"{{ 'x' * 10**9 }}", CIT_ERR_LIMIT, "byte limit"},
        {"{{ [0] * 10**9 }}", CIT_ERR_LIMIT, "too large"},
        {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", CIT_ERR_LIMIT,
         "step budget"},
        {"{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}",
         CIT_ERR_LIMIT, "step budget"},
        {"{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
         CIT_ERR_LIMIT, "budget"},
        {"{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", CIT_ERR_LIMIT, "output exceeds"},
        {"{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}",
         CIT_ERR_LIMIT, "nested more than"},
        {"{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", CIT_ERR_LIMIT, "too deeply"},
        {"{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = dict(ns.d, k=ns.d) %}{% endfor %}",
         CIT_ERR_LIMIT, "nested"},
        {"{% macro a() %}{{ caller() }}{% endmacro %}{% macro b() %}{% call a() %}{{ b() }}{% endcall %}{% endmacro %}{{ b() }}",
         CIT_ERR_LIMIT, "recursion depth"},
        {"{% for i in range(100000) %}{{ ('x' * 100000).replace('x', 'yy') | length }}{% endfor %}", CIT_ERR_LIMIT,
         "step budget"},
    };
    struct rusage ru;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, err[512];
        size_t len;
        double t0 = now_s();
        enum cit_status st = run(cases[i].tpl, NULL, NULL, &out, &len, err, sizeof err);
        double dt = now_s() - t0;
        printf("hostile %2zu: %6.3f s  status %d  %s\n", i, dt, st, err);
        if (st != cases[i].st || !strstr(err, cases[i].msg))
            fprintf(stderr, "hostile case %zu: wanted \"%s\"\n", i, cases[i].msg);
        assert_int_equal(st, cases[i].st);
        assert_non_null(strstr(err, cases[i].msg));
        assert_null(out);
        assert_true(dt < 30.0); /* generous for sanitizer builds; ~1 s or less in release */
    }
    /* Deeply nested source is refused at parse time, before it could recurse deeply. */
    size_t n = 100000;
    char *deep = malloc(2 * n + 16);
    assert_non_null(deep);
    memcpy(deep, "{{ ", 3);
    memset(deep + 3, '(', n);
    memcpy(deep + 3 + n, "1", 1);
    memset(deep + 4 + n, ')', n);
    memcpy(deep + 4 + 2 * n, " }}", 4);
    struct cit_template *t = NULL;
    char err[512];
    assert_int_equal(cit_template_parse(deep, strlen(deep), &t, err, sizeof err), CIT_ERR_LIMIT);
    free(deep);
    deep = malloc(20 * n + 1);
    assert_non_null(deep);
    deep[0] = '\0';
    for (size_t i = 0; i < 5000; i++)
        strcat(deep + (i ? 0 : 0), "{% if x %}");
    assert_int_equal(cit_template_parse(deep, strlen(deep), &t, err, sizeof err), CIT_ERR_LIMIT);
    assert_non_null(strstr(err, "nested too deeply"));
    free(deep);
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS after the hostile templates: %ld MiB\n", ru.ru_maxrss / 1024);
}

/* Tighter budgets are honoured and each names itself. */
static void test_budget_options(void **state)
{
    (void)state;
    struct cit_template_options o;
    fixed_opts(&o);
    char *out, err[512];
    size_t len;
    o.limits.max_output = 10;
    assert_int_equal(run("{{ 'x' * 11 }}", NULL, &o, &out, &len, err, sizeof err), CIT_ERR_LIMIT);
    assert_int_equal(run("{{ 'x' * 10 }}", NULL, &o, &out, &len, err, sizeof err), CIT_OK);
    assert_string_equal(out, "xxxxxxxxxx");
    free(out);
    fixed_opts(&o);
    o.limits.max_steps = 1000;
    assert_int_equal(run("{% for i in range(2000) %}{% endfor %}", NULL, &o, &out, &len, err, sizeof err),
                     CIT_ERR_LIMIT);
    assert_non_null(strstr(err, "step budget exhausted (1000 steps)"));
    fixed_opts(&o);
    o.limits.max_depth = 20;
    assert_int_equal(run("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", NULL, &o, &out, &len, err, sizeof err),
                     CIT_ERR_LIMIT);
    assert_non_null(strstr(err, "recursion depth limit exceeded (20)"));
    fixed_opts(&o);
    o.limits.max_memory = 100000;
    assert_int_equal(run("{{ range(50000)|list|length }}", NULL, &o, &out, &len, err, sizeof err), CIT_ERR_LIMIT);
    assert_non_null(strstr(err, "memory budget exceeded"));
}

static void test_chat_api(void **state)
{
    (void)state;
    const char *src = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
                      "{% if add_generation_prompt %}[assistant]{% endif %}{{ extra_var | default('-') }}";
    struct cit_template *t = NULL;
    char err[512];
    assert_int_equal(cit_template_parse(src, strlen(src), &t, err, sizeof err), CIT_OK);
    json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"hi\"}]", 0, NULL);
    json_t *extra = json_loads("{\"extra_var\": \"E\", \"bos_token\": \"ignored\"}", 0, NULL);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(cit_template_render_chat(t, msgs, true, "<s>", "</s>", extra, NULL, &out, &len, err, sizeof err),
                     CIT_OK);
    assert_string_equal(out, "<s>[user]hi[assistant]E");
    assert_int_equal(len, strlen(out));
    free(out);
    /* NULL bos/eos: the template's own (empty for a parsed string). */
    assert_int_equal(cit_template_render_chat(t, msgs, false, NULL, NULL, NULL, NULL, &out, &len, err, sizeof err),
                     CIT_OK);
    assert_string_equal(out, "[user]hi-");
    free(out);
    assert_int_equal(cit_template_render_chat(t, extra, false, NULL, NULL, NULL, NULL, &out, &len, err, sizeof err),
                     CIT_ERR_INVALID_ARG);
    assert_null(out);
    assert_int_equal(cit_template_render(t, msgs, NULL, &out, &len, err, sizeof err), CIT_ERR_INVALID_ARG);
    size_t sl;
    assert_string_equal(cit_template_source(t, &sl), src);
    assert_int_equal(sl, strlen(src));
    assert_false(cit_template_is_fallback(t));
    cit_template_free(t);
    cit_template_free(NULL);

    /* The fallback is ChatML. */
    const char *fb = cit_template_fallback_source();
    assert_int_equal(cit_template_parse(fb, strlen(fb), &t, err, sizeof err), CIT_OK);
    json_t *two = json_loads("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"U\"}]", 0, NULL);
    assert_int_equal(cit_template_render_chat(t, two, true, NULL, NULL, NULL, NULL, &out, &len, err, sizeof err),
                     CIT_OK);
    assert_string_equal(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    cit_template_free(t);
    json_decref(two);
    json_decref(msgs);
    json_decref(extra);

    /* strftime_now follows the clock passed in options. */
    struct cit_template_options o;
    fixed_opts(&o);
    o.utc_offset_s = 3600;
    const char *ts = "{{ strftime_now('%d %b %Y %H:%M') }}";
    assert_int_equal(run(ts, NULL, &o, &out, &len, err, sizeof err), CIT_OK);
    assert_string_equal(out, "02 Jan 2026 04:04");
    free(out);
}

static void test_gguf(void **state)
{
    (void)state;
    char err[512];
    struct cit_gguf *g = NULL;
    struct cit_template *t = NULL;
    /* A vocabulary with a real chat template (phi-3). */
    if (cit_gguf_open(test_shared_path("vocab/ggml-vocab-phi-3.gguf"), &g, err, sizeof err) == CIT_OK) {
        assert_int_equal(cit_template_from_gguf(g, &t, err, sizeof err), CIT_OK);
        assert_false(cit_template_is_fallback(t));
        printf("phi-3: bos '%s' eos '%s'\n", cit_template_bos(t), cit_template_eos(t));
        json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"Hi\"}]", 0, NULL);
        char *out = NULL;
        size_t len;
        assert_int_equal(cit_template_render_chat(t, msgs, true, NULL, NULL, NULL, NULL, &out, &len, err, sizeof err),
                         CIT_OK);
        assert_non_null(strstr(out, "Hi"));
        free(out);
        json_decref(msgs);
        cit_template_free(t);
        cit_gguf_free(g);
    }
    /* A model without one gets the fallback, with its BOS/EOS texts. */
    assert_int_equal(cit_gguf_open(test_shared_path("models/stories260K.gguf"), &g, err, sizeof err), CIT_OK);
    assert_int_equal(cit_template_from_gguf(g, &t, err, sizeof err), CIT_OK);
    assert_true(cit_template_is_fallback(t));
    assert_string_equal(cit_template_source(t, NULL), cit_template_fallback_source());
    assert_string_equal(cit_template_bos(t), "<s>");
    assert_string_equal(cit_template_eos(t), "</s>");
    cit_template_free(t);
    cit_gguf_free(g);
}

/* Whitespace control, as Jinja2 does it with trim_blocks + lstrip_blocks. */
static void test_whitespace(void **state)
{
    (void)state;
    static const struct {
        const char *tpl, *want;
    } cases[] = {
        {"a\n  {% if true %}\n  b\n  {% endif %}\nc", "a\n  b\nc"},
        {"a  {%- if true -%}  b  {%- endif -%}  c", "abc"},
        {"a\n  {%+ if true %}b{% endif %}", "a\n  b"},
        {"{% if true +%}\nb{% endif %}", "\nb"},
        {"  {{ 'x' }}\n", "  x"},
        {"x\n\n", "x\n"},
        {"x\r\ny\rz", "x\ny\nz"},
        {"{# c #}\nx", "x"},
        {"  {# c #}  \ny", "  \ny"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, err[512];
        size_t len;
        assert_int_equal(run(cases[i].tpl, NULL, NULL, &out, &len, err, sizeof err), CIT_OK);
        if (strcmp(out, cases[i].want))
            fprintf(stderr, "ws case %zu: got '%s'\n", i, out);
        assert_string_equal(out, cases[i].want);
        free(out);
    }
}

/* One parsed template, rendered from several threads at once, gives the same text everywhere. */
struct thread_job {
    const struct cit_template *t;
    const json_t *msgs;
    const char *want;
    int ok;
};

static void *render_many(void *arg)
{
    struct thread_job *j = arg;
    j->ok = 1;
    for (int i = 0; i < 200; i++) {
        char *out = NULL, err[256];
        size_t len;
        if (cit_template_render_chat(j->t, j->msgs, true, "<s>", "</s>", NULL, NULL, &out, &len, err, sizeof err) !=
                CIT_OK ||
            strcmp(out, j->want) != 0)
            j->ok = 0;
        free(out);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    size_t n;
    char *src = test_read_file(test_shared_path("templates/Qwen-Qwen2.5-7B-Instruct.jinja"), &n);
    assert_non_null(src);
    struct cit_template *t = NULL;
    char err[256];
    assert_int_equal(cit_template_parse(src, n, &t, err, sizeof err), CIT_OK);
    json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Yo\"},"
                              "{\"role\":\"user\",\"content\":\"Again\"}]",
                              0, NULL);
    char *want = NULL;
    size_t len;
    assert_int_equal(cit_template_render_chat(t, msgs, true, "<s>", "</s>", NULL, NULL, &want, &len, err, sizeof err),
                     CIT_OK);
    pthread_t th[4];
    struct thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct thread_job){t, msgs, want, 0};
        assert_int_equal(pthread_create(&th[i], NULL, render_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
    }
    free(want);
    json_decref(msgs);
    cit_template_free(t);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_cases), cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_parse_errors),    cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_hostile),         cmocka_unit_test(test_budget_options),
        cmocka_unit_test(test_chat_api),        cmocka_unit_test(test_gguf),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
