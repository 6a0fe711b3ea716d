package org.modelrunner.host;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Parameter;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * One run of contract generation: proto3 text from a class's public method signatures (docs/java-conventions.md,
 * "Generated contracts"). Whatever the class's names, the text compiles and binds back to the class:
 *
 * <ul>
 *   <li>Type names (messages, enums, the service) are ASCII identifiers starting with an upper-case letter (so
 *       never a proto keyword nor a scalar type); the service takes the class's simple name first; a message takes
 *       its class's simple name, else the names of its enclosing classes joined ({@code OuterInner}), else a
 *       number suffix ({@code Point2}); enum values are package-level symbols too (C++ scoping), so a name they
 *       took is not reused.</li>
 *   <li>An rpc is the method name with an upper-case first letter when {@link Slot} binds that back to the method;
 *       otherwise (a method named {@code Score}, a name proto cannot spell) it gets a free name and the rpc line
 *       ends with {@code // java_method: <name>}, which onboarding writes into metadata.json's {@code methods}.
 *       In rpc lines a message whose name is also an rpc name is written fully qualified ({@code .pkg.Score}):
 *       inside the service the bare name would be the rpc.</li>
 *   <li>Field names: see {@link #fieldNames}. A field that needs another name than the Java one carries
 *       {@code [json_name = "<java name>"]}, which {@link Binder} uses when the name does not match.</li>
 *   <li>An enum whose constants proto cannot hold as they are (names that collide once case is ignored, that are
 *       not ASCII identifiers, or that cannot be package-level symbols even with the enum's prefix) becomes a
 *       {@code string} field: the constant's name.</li>
 * </ul>
 */
final class ProtoGen {
    /** Enum value names the proto parser takes for statements inside an enum body. */
    private static final Set<String> ENUM_VALUE_KEYWORDS = Set.of("option", "reserved");
    /** Field names that break generated message classes (python: the class attribute of that name). */
    private static final Set<String> FIELD_RESERVED = Set.of("DESCRIPTOR");

    final Class<?> cls;
    final String pkg;
    final Map<Object, String> names = new HashMap<>();       // Class or wrapper key -> message/enum name ("string": an enum as text)
    final Set<String> used = new HashSet<>();                // package-level symbols: messages, enums, enum values, the service
    final List<String> blocks = new ArrayList<>();
    final List<String> errors = new ArrayList<>();

    ProtoGen(Class<?> cls, String pkg) {
        this.cls = cls;
        String p = pkg;
        if (p == null || p.isEmpty()) p = cls.getPackageName().isEmpty() ? "model" : cls.getPackageName();
        this.pkg = packageName(p);
    }

    // ------------------------------------------------------------------ names

    /** {@code s} with every character proto does not allow in an identifier replaced by '_' (never empty, never a digit first). */
    static String ident(String s) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            sb.append(ch < 128 && (Character.isLetterOrDigit(ch) || ch == '_') ? ch : '_');
        }
        if (sb.length() == 0 || Character.isDigit(sb.charAt(0))) sb.insert(0, '_');
        return sb.toString();
    }

    static boolean isIdent(String s) { return !s.isEmpty() && ident(s).equals(s); }

    /** A type name: an identifier starting with an upper-case ASCII letter. */
    static String typeIdent(String s) {
        String t = ident(s).replaceFirst("^_+", "");
        if (t.isEmpty() || !Character.isLetter(t.charAt(0))) return "X" + t;
        return Character.toUpperCase(t.charAt(0)) + t.substring(1);
    }

    static String packageName(String p) {
        List<String> parts = new ArrayList<>();
        for (String part : p.split("\\.", -1)) if (!part.isEmpty()) parts.add(ident(part));
        return parts.isEmpty() ? "model" : String.join(".", parts);
    }

    static String upperCamel(String s) { return s.isEmpty() ? s : Character.toUpperCase(s.charAt(0)) + s.substring(1); }

    /** The first of {@code candidates} not yet a package-level symbol, else the first with the smallest free number appended. */
    String unique(String... candidates) {
        for (String c : candidates) if (used.add(c)) return c;
        for (int i = 2; ; i++) if (used.add(candidates[0] + i)) return candidates[0] + i;
    }

    /** protoc's default JSON name: underscores dropped, the letter after one upper-cased. */
    static String jsonName(String name) {
        StringBuilder sb = new StringBuilder();
        boolean up = false;
        for (char ch : name.toCharArray()) {
            if (ch == '_') { up = true; continue; }
            sb.append(up ? Character.toUpperCase(ch) : ch);
            up = false;
        }
        return sb.toString();
    }

    /** protoc's name of the entry message of map field {@code name}: PascalCase + "Entry" (a symbol in the message). */
    static String mapEntryName(String name) {
        StringBuilder sb = new StringBuilder();
        boolean up = true;
        for (char ch : name.toCharArray()) {
            if (ch == '_') { up = true; continue; }
            sb.append(up && ch >= 'a' && ch <= 'z' ? (char) (ch - 'a' + 'A') : ch);
            up = false;
        }
        return sb.append("Entry").toString();
    }

    /** {@code c} can name a field: an identifier, not reserved, and (a map) its entry message name starts with a letter. */
    static boolean spells(String c, boolean map) {
        return isIdent(c) && !FIELD_RESERVED.contains(c) && (!map || Character.isLetter(mapEntryName(c).charAt(0)));
    }

    /** A Java type that becomes a map field ({@code Map<K, V>}, {@code Optional<Map<K, V>>}). */
    static boolean isMapType(Type t) {
        Class<?> r = Binder.raw(t);
        return Props.isMap(r) || (r == java.util.Optional.class && Props.isMap(Binder.raw(Binder.typeArg(t, 0))));
    }

    /**
     * Proto field names for Java names (the properties of a class, or the parameters of a method) in their
     * order ({@code maps}: which become map fields): {@code {name, jsonName or null}} each. {@link Props#match}
     * must find the Java name again from the proto name, as {@link Binder} does, and protoc requires names,
     * default JSON names, custom JSON names and map entry names ({@link #mapEntryName}) to be distinct across a
     * message. In order of preference:
     * <ol>
     *   <li>the snake_case name ({@code sepalLength -> sepal_length}), when it matches back to this Java name;</li>
     *   <li>the Java name itself;</li>
     *   <li>otherwise (names that differ only in case or underscores, names proto cannot spell) the snake_case name
     *       made an identifier, with {@code _2}, {@code _3}... appended until it matches no Java name, and
     *       {@code json_name} the Java name, by which the binder finds it.</li>
     * </ol>
     * A name from rule 1 or 2 is taken only when neither it nor its JSON name is another Java name, so that rule 3
     * can always use the Java name as the JSON name.
     */
    static String[][] fieldNames(List<String> javaNames, List<Boolean> maps) {
        Map<String, Integer> byName = new LinkedHashMap<>();
        for (int i = 0; i < javaNames.size(); i++) byName.put(javaNames.get(i), i);
        Set<String> taken = new HashSet<>();
        String[][] out = new String[javaNames.size()][];
        for (int i = 0; i < javaNames.size(); i++) {
            String jn = javaNames.get(i);
            for (String c : new String[] {Props.snake(jn), jn}) {
                if (!spells(c, maps.get(i)) || taken.contains(c) || taken.contains(jsonName(c))
                        || (maps.get(i) && taken.contains(mapEntryName(c)))) continue;
                Integer back = Props.match(c, byName);
                if (back == null || back != i) continue;
                Integer other = byName.get(jsonName(c));
                if (other != null && other != i) continue;
                out[i] = new String[] {c, null};
                taken.add(c);
                taken.add(jsonName(c));
                if (maps.get(i)) taken.add(mapEntryName(c));
                break;
            }
        }
        for (int i = 0; i < javaNames.size(); i++) {
            if (out[i] != null) continue;
            String jn = javaNames.get(i);
            String base = ident(Props.snake(jn));
            if (!spells(base, maps.get(i))) base = "m" + base; // a map _1: m_1 (its entry message M1Entry)
            for (int k = 1; ; k++) {
                String c = k == 1 ? base : base + "_" + k;
                if (!spells(c, maps.get(i)) || taken.contains(c) || taken.contains(jsonName(c))
                        || byName.containsKey(jsonName(c)) || Props.match(c, byName) != null
                        || (maps.get(i) && (taken.contains(mapEntryName(c)) || byName.containsKey(mapEntryName(c))))) continue;
                out[i] = new String[] {c, jn};
                taken.add(c);
                taken.add(jsonName(c));
                taken.add(jn);
                if (maps.get(i)) taken.add(mapEntryName(c));
                break;
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ generation

    String generate(String[] only) throws HostException {
        String service = unique(typeIdent(cls.getSimpleName()));
        List<Method> ms = Inspector.modelMethods(cls);
        if (only != null && only.length > 0) {
            List<Method> picked = new ArrayList<>();
            for (String want : only) {
                Method found = null;
                for (Method m : cls.getMethods()) if (m.getName().equals(want) && !m.isBridge() && (found == null || m.getParameterCount() < found.getParameterCount())) found = m;
                if (found == null) throw new HostException("inspect", "no public method '" + want + "' in class " + cls.getName());
                picked.add(found);
            }
            ms = picked;
        }
        // overloads: the first (fewest parameters) wins
        List<Method> chosen = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (Method m : ms) if (seen.add(m.getName())) chosen.add(m);
        // rpc names: those Slot binds back by name first, then the others (with a java_method override)
        Map<Method, String> rpcOf = new HashMap<>();
        Set<String> rpcNames = new HashSet<>();
        for (Method m : chosen) {
            String rpc = upperCamel(m.getName());
            if (isIdent(rpc) && Slot.lowerCamel(rpc).equals(m.getName()) && rpcNames.add(rpc)) rpcOf.put(m, rpc);
        }
        for (Method m : chosen) {
            if (rpcOf.containsKey(m)) continue;
            String base = typeIdent(m.getName());
            String rpc = base;
            for (int i = 2; !rpcNames.add(rpc); i++) rpc = base + i;
            rpcOf.put(m, rpc);
        }
        List<String[]> rpcs = new ArrayList<>(); // {rpc, request, response, java method or null}
        for (Method m : chosen) {
            if (Slot.looksProto(m)) { errors.add(m.getName() + ": proto-native method; ship the .proto its classes were generated from"); continue; }
            String rpc = rpcOf.get(m);
            String req = request(m, rpc);
            String resp = response(m, rpc);
            rpcs.add(new String[] {rpc, req, resp, Slot.lowerCamel(rpc).equals(m.getName()) ? null : m.getName()});
        }
        if (!errors.isEmpty()) throw new HostException("inspect", "cannot generate a contract for " + cls.getName() + ": " + String.join("; ", errors));
        if (rpcs.isEmpty()) throw new HostException("inspect", "class " + cls.getName() + " has no public model methods");
        StringBuilder sb = new StringBuilder();
        sb.append("// Generated by model-runner from ").append(cls.getName()).append(". Edit freely; keep field numbers.\n");
        sb.append("syntax = \"proto3\";\n\npackage ").append(pkg).append(";\n\n");
        for (String b : blocks) sb.append(b).append('\n');
        sb.append("service ").append(service).append(" {\n");
        for (String[] r : rpcs) {
            sb.append("  rpc ").append(r[0]).append(" (").append(ref(r[1], rpcNames)).append(") returns (")
                    .append(ref(r[2], rpcNames)).append(");");
            if (r[3] != null) sb.append("  // java_method: ").append(r[3]);
            sb.append('\n');
        }
        sb.append("}\n");
        return sb.toString();
    }

    /** A message named in an rpc line: inside the service an rpc of the same name would hide it. */
    String ref(String message, Set<String> rpcNames) { return rpcNames.contains(message) ? "." + pkg + "." + message : message; }

    String request(Method m, String rpc) {
        Parameter[] ps = m.getParameters();
        if (ps.length == 1 && Props.isPojo(ps[0].getType()) && !ps[0].getType().isInterface()) return message(ps[0].getType(), m.getName());
        String name = unique(rpc + "Request");
        int idx = blocks.size();
        blocks.add("");
        Type[] types = m.getGenericParameterTypes();
        List<String> javaNames = new ArrayList<>();
        List<Boolean> maps = new ArrayList<>();
        for (int i = 0; i < ps.length; i++) { javaNames.add(ps[i].getName()); maps.add(isMapType(types[i])); }
        String[][] fn = fieldNames(javaNames, maps);
        StringBuilder sb = new StringBuilder("message " + name + " {\n");
        for (int i = 0; i < ps.length; i++)
            sb.append("  ").append(field(types[i], fn[i][0], fn[i][1], i + 1, m.getName() + " parameter " + ps[i].getName())).append('\n');
        blocks.set(idx, sb.append("}\n").toString());
        return name;
    }

    String response(Method m, String rpc) {
        Class<?> r = m.getReturnType();
        if (Props.isPojo(r)) return message(r, m.getName() + " result");
        String name = unique(rpc + "Response");
        int idx = blocks.size();
        blocks.add("");
        String body = r == void.class ? "" : "  " + field(m.getGenericReturnType(), isRepeated(r) ? "values" : "value", null, 1, m.getName() + " result") + "\n";
        blocks.set(idx, "message " + name + " {\n" + body + "}\n");
        return name;
    }

    static boolean isRepeated(Class<?> r) { return (r.isArray() && r != byte[].class) || Props.isCollection(r); }

    static String quoted(String s) { return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""; }

    /** A field declaration (without indentation); {@code json}: a json_name option, or null. */
    String field(Type t, String name, String json, int number, String where) {
        String tail = " " + name + " = " + number + (json == null ? "" : " [json_name = " + quoted(json) + "]") + ";";
        Class<?> r = Binder.raw(t);
        if (r == java.util.Optional.class) {
            Type inner = Binder.typeArg(t, 0);
            Class<?> ir = Binder.raw(inner);
            String s = scalar(ir);
            if (s == null && ir.isEnum()) s = enumType(ir);
            if (s != null) return "optional " + s + tail;
            return field(inner, name, json, number, where);
        }
        if (Props.isMap(r)) {
            Class<?> kr = Binder.raw(Binder.typeArg(t, 0));
            String k = kr.isEnum() ? "string" : scalar(kr);
            if (k == null || k.equals("double") || k.equals("float") || k.equals("bytes")) {
                errors.add(where + ": map key type " + Binder.typeArg(t, 0).getTypeName() + " is not a string/integer/bool/enum");
                return "// " + name;
            }
            return "map<" + k + ", " + element(Binder.typeArg(t, 1), where) + ">" + tail;
        }
        if (isRepeated(r)) return "repeated " + element(Binder.component(t), where) + tail;
        return single(t, where) + tail;
    }

    /** The type of a repeated element / map value: nested repeated values or maps get a wrapper message. */
    String element(Type t, String where) {
        Class<?> r = Binder.raw(t);
        if (isRepeated(r) || Props.isMap(r)) {
            String inner = field(t, isRepeated(r) ? "values" : "entries", null, 1, where);
            String key = "wrap:" + inner; // one wrapper per proto shape: List<Double> and double[] share DoubleArray
            String n = names.get(key);
            if (n != null) return n;
            n = unique(wrapperName(t));
            names.put(key, n);
            blocks.add("message " + n + " {\n  " + inner + "\n}\n");
            return n;
        }
        return single(t, where);
    }

    /** DoubleArray, PointArray, IntArrayArray, DoubleMap, ... after the proto type of the innermost element. */
    String wrapperName(Type t) {
        Class<?> r = Binder.raw(t);
        if (isRepeated(r)) return wrapperName(Binder.component(t)) + "Array";
        if (Props.isMap(r)) return wrapperName(Binder.typeArg(t, 1)) + "Map";
        String s = scalar(r);
        if (s != null) return upperCamel(s.equals("int32") ? "int" : s.equals("int64") ? "long" : s);
        String n = names.get(r);
        return typeIdent(n != null ? n : r.getSimpleName());
    }

    String single(Type t, String where) {
        Class<?> r = Binder.raw(t);
        String s = scalar(r);
        if (s != null) return s;
        if (r.isEnum()) return enumType(r);
        if (Props.isPojo(r) && !r.isInterface()) return message(r, where);
        errors.add(where + ": Java type " + t.getTypeName() + " has no proto mapping");
        return "string";
    }

    static String scalar(Class<?> c) {
        if (c == double.class || c == Double.class) return "double";
        if (c == float.class || c == Float.class) return "float";
        if (c == long.class || c == Long.class) return "int64";
        if (c == int.class || c == Integer.class || c == short.class || c == Short.class || c == byte.class || c == Byte.class) return "int32";
        if (c == boolean.class || c == Boolean.class) return "bool";
        if (c == String.class || c == CharSequence.class || c == char.class || c == Character.class) return "string";
        if (c == byte[].class) return "bytes";
        return null;
    }

    /** The candidate names of a class's message or enum: its simple name, then with its enclosing classes' names. */
    static String[] typeCandidates(Class<?> c) {
        String simple = typeIdent(c.getSimpleName());
        StringBuilder chain = new StringBuilder();
        for (Class<?> k = c; k != null; k = k.getEnclosingClass()) chain.insert(0, typeIdent(k.getSimpleName()));
        return chain.toString().equals(simple) ? new String[] {simple} : new String[] {simple, chain.toString()};
    }

    /** protoc's uniqueness key of an enum value: the enum-name prefix stripped, then PascalCase (descriptor.cc). */
    static String enumValueKey(String enumName, String value) {
        String prefix = enumName.toLowerCase(Locale.ROOT).replace("_", "");
        int i = 0, j = 0;
        String s = value;
        for (; i < value.length() && j < prefix.length(); i++) {
            if (value.charAt(i) == '_') continue;
            if (Character.toLowerCase(value.charAt(i)) != prefix.charAt(j++)) { j = -1; break; }
        }
        if (j == prefix.length()) {
            while (i < value.length() && value.charAt(i) == '_') i++;
            if (i < value.length()) s = value.substring(i);
        }
        StringBuilder sb = new StringBuilder();
        boolean up = true;
        for (char ch : s.toCharArray()) {
            if (ch == '_') { up = true; continue; }
            sb.append(up ? Character.toUpperCase(ch) : Character.toLowerCase(ch));
            up = false;
        }
        return sb.toString();
    }

    /** An enum's proto type name, or "string" when proto cannot hold its constants (see the class comment). */
    String enumType(Class<?> e) {
        String n = names.get(e);
        if (n != null) return n;
        // the constants in declaration order, by their fields: reading them does not initialise the enum
        List<String> ks = new ArrayList<>();
        for (Field f : e.getDeclaredFields()) if (f.isEnumConstant()) ks.add(f.getName());
        String[] cands = typeCandidates(e);
        String chosen = null;
        for (String c : cands) if (!used.contains(c)) { chosen = c; break; }
        if (chosen == null) for (int i = 2; chosen == null; i++) if (!used.contains(cands[0] + i)) chosen = cands[0] + i;
        String prefix = Props.snake(chosen).toUpperCase(Locale.ROOT) + "_"; // as Binder strips it (Codecs.enumPrefix)
        List<String> values = null;
        Set<String> keys = new HashSet<>();
        boolean distinct = !ks.isEmpty();
        for (String k : ks) distinct &= isIdent(k) && keys.add(enumValueKey(chosen, k));
        if (distinct) {
            for (String p : new String[] {"", prefix}) {
                List<String> vs = new ArrayList<>();
                Set<String> mine = new HashSet<>();
                for (String k : ks) vs.add(p + k);
                boolean ok = true;
                for (String v : vs) ok &= !ENUM_VALUE_KEYWORDS.contains(v) && !used.contains(v) && !v.equals(chosen) && mine.add(v);
                if (ok) { values = vs; break; }
            }
        }
        if (values == null) { // the constants travel as their names
            names.put(e, "string");
            return "string";
        }
        used.add(chosen);
        used.addAll(values);
        names.put(e, chosen);
        StringBuilder sb = new StringBuilder("enum " + chosen + " {\n");
        for (int i = 0; i < values.size(); i++) sb.append("  ").append(values.get(i)).append(" = ").append(i).append(";\n");
        blocks.add(sb.append("}\n").toString());
        return chosen;
    }

    String message(Class<?> c, String where) {
        String n = names.get(c);
        if (n != null) return n;
        n = unique(typeCandidates(c));
        names.put(c, n);
        int idx = blocks.size();
        blocks.add("");
        List<Props.Prop> props = Props.of(c);
        List<String> javaNames = new ArrayList<>();
        List<Boolean> maps = new ArrayList<>();
        for (Props.Prop p : props) { javaNames.add(p.name); maps.add(isMapType(p.type)); }
        String[][] fn = fieldNames(javaNames, maps);
        StringBuilder sb = new StringBuilder("message " + n + " {\n");
        for (int i = 0; i < props.size(); i++) {
            Props.Prop p = props.get(i);
            sb.append("  ").append(field(p.type, fn[i][0], fn[i][1], i + 1, c.getSimpleName() + "." + p.name)).append('\n');
        }
        blocks.set(idx, sb.append("}\n").toString());
        return n;
    }

}
