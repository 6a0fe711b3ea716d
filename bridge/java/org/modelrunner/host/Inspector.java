package org.modelrunner.host;

import java.io.File;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Parameter;
import java.lang.reflect.Type;
import java.net.URL;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * Reads a JAR without running it (classes are loaded but not initialised): lists candidate classes and
 * generates a proto3 contract from a class's public method signatures.
 *
 * <p>Generated contracts are stable: rpcs sorted by method name; message fields numbered 1..n in the order of
 * {@link Props} (record components / fields in declaration order, then field-less bean properties by name);
 * parameters in declaration order. Re-inspecting the same class gives the same text.
 */
final class Inspector {
    private Inspector() {}

    private static ModelLoader loader(String[] jars) throws HostException {
        URL[] urls = new URL[jars.length];
        for (int i = 0; i < jars.length; i++) {
            File f = new File(jars[i]);
            try (ZipFile z = new ZipFile(f)) {
                urls[i] = f.toURI().toURL();
            } catch (Exception e) {
                throw new HostException("load", f.getName() + " is not a readable JAR (zip) file: " + jars[i] + " (" + e.getMessage() + ")");
            }
        }
        return new ModelLoader("inspect", urls, Host.class.getClassLoader());
    }

    static boolean isAccessor(Method m) {
        String n = m.getName();
        return (m.getParameterCount() == 0 && (n.startsWith("get") || n.startsWith("is")) && n.length() > 2)
                || (m.getParameterCount() == 1 && n.startsWith("set") && m.getReturnType() == void.class);
    }

    static List<Method> modelMethods(Class<?> c) {
        List<Method> l = new ArrayList<>();
        for (Method m : c.getMethods()) {
            if (m.getDeclaringClass() == Object.class || m.isBridge() || m.isSynthetic()) continue;
            if (m.getName().equals("main") || isAccessor(m)) continue;
            if (Arrays.asList("equals", "hashCode", "toString", "close", "compareTo").contains(m.getName())) continue;
            l.add(m);
        }
        l.sort(Comparator.comparing(Method::getName).thenComparingInt(Method::getParameterCount).thenComparing(Method::toGenericString));
        return l;
    }

    static String listCandidates(String[] jars) throws HostException {
        List<Object> out = new ArrayList<>();
        try (ModelLoader loader = loader(jars); ZipFile z = new ZipFile(jars[0])) {
            List<String> names = new ArrayList<>();
            for (Enumeration<? extends ZipEntry> en = z.entries(); en.hasMoreElements(); ) {
                String n = en.nextElement().getName();
                if (!n.endsWith(".class") || n.startsWith("META-INF/") || n.endsWith("module-info.class")) continue;
                String cn = n.substring(0, n.length() - 6).replace('/', '.');
                if (cn.matches(".*\\$\\d.*")) continue; // anonymous classes
                names.add(cn);
            }
            names.sort(null);
            for (String cn : names) {
                Class<?> c;
                try {
                    c = Class.forName(cn, false, loader);
                } catch (Throwable e) {
                    continue;
                }
                if (!Modifier.isPublic(c.getModifiers()) || c.isInterface() || c.isEnum() || c.isAnnotation()
                        || Modifier.isAbstract(c.getModifiers()) || c.isRecord()) continue;
                List<Object> ms = new ArrayList<>();
                try {
                    for (Method m : modelMethods(c)) {
                        Map<String, Object> mm = new LinkedHashMap<>();
                        mm.put("name", m.getName());
                        mm.put("signature", m.toGenericString());
                        mm.put("static", Modifier.isStatic(m.getModifiers()));
                        ms.add(mm);
                    }
                } catch (Throwable e) {
                    continue; // a signature refers to a class missing from the JARs
                }
                if (ms.isEmpty()) continue;
                Map<String, Object> cm = new LinkedHashMap<>();
                cm.put("class", cn);
                cm.put("methods", ms);
                out.add(cm);
            }
        } catch (HostException e) {
            throw e;
        } catch (Exception e) {
            throw new HostException("load", "cannot read " + jars[0] + ": " + e, e, null);
        }
        return Json.write(out);
    }

    static String generateProto(String[] jars, String className, String[] methods, String pkg) throws HostException {
        try (ModelLoader loader = loader(jars)) {
            Class<?> c;
            try {
                c = Class.forName(className, false, loader);
            } catch (ClassNotFoundException e) {
                throw new HostException("load", "class " + className + " not found in " + new File(jars[0]).getName());
            } catch (LinkageError e) {
                throw new HostException("load", "class " + className + " cannot be loaded: " + e, e, null);
            }
            try {
                return new Gen(c, pkg).generate(methods);
            } catch (LinkageError e) {
                throw new HostException("inspect", "a type used by " + className + " cannot be loaded: " + e, e, null);
            }
        } catch (java.io.IOException e) {
            throw new HostException("load", e.toString(), e, null);
        }
    }

    static String upperCamel(String s) { return s.isEmpty() ? s : Character.toUpperCase(s.charAt(0)) + s.substring(1); }

    /** One generation run. */
    static final class Gen {
        final Class<?> cls;
        final String pkg;
        final Map<Object, String> names = new HashMap<>();       // Class or wrapper key -> message/enum name
        final Set<String> used = new HashSet<>();
        final List<String> blocks = new ArrayList<>();
        final Set<String> enumValues = new HashSet<>();
        final List<String> errors = new ArrayList<>();

        Gen(Class<?> cls, String pkg) {
            this.cls = cls;
            String p = pkg;
            if (p == null || p.isEmpty()) p = cls.getPackageName().isEmpty() ? "model" : cls.getPackageName();
            this.pkg = p;
        }

        String unique(String base) {
            String n = base;
            for (int i = 2; used.contains(n); i++) n = base + i;
            used.add(n);
            return n;
        }

        String generate(String[] only) throws HostException {
            used.add(cls.getSimpleName());
            List<Method> ms = modelMethods(cls);
            List<String> rpcs = new ArrayList<>();
            Set<String> seen = new HashSet<>();
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
            for (Method m : ms) {
                String rpc = upperCamel(m.getName());
                if (!seen.add(rpc)) continue; // overloads: the first (fewest parameters) wins
                if (Slot.looksProto(m)) { errors.add(m.getName() + ": proto-native method; ship the .proto its classes were generated from"); continue; }
                String req = request(m, rpc);
                String resp = response(m, rpc);
                rpcs.add("  rpc " + rpc + " (" + req + ") returns (" + resp + ");");
            }
            if (!errors.isEmpty()) throw new HostException("inspect", "cannot generate a contract for " + cls.getName() + ": " + String.join("; ", errors));
            if (rpcs.isEmpty()) throw new HostException("inspect", "class " + cls.getName() + " has no public model methods");
            StringBuilder sb = new StringBuilder();
            sb.append("// Generated by model-runner from ").append(cls.getName()).append(". Edit freely; keep field numbers.\n");
            sb.append("syntax = \"proto3\";\n\npackage ").append(pkg).append(";\n\n");
            for (String b : blocks) sb.append(b).append('\n');
            sb.append("service ").append(cls.getSimpleName()).append(" {\n");
            for (String r : rpcs) sb.append(r).append('\n');
            sb.append("}\n");
            return sb.toString();
        }

        String request(Method m, String rpc) {
            Parameter[] ps = m.getParameters();
            if (ps.length == 1 && Props.isPojo(ps[0].getType()) && !ps[0].getType().isInterface()) return message(ps[0].getType(), m.getName());
            String name = unique(rpc + "Request");
            StringBuilder sb = new StringBuilder("message " + name + " {\n");
            Type[] types = m.getGenericParameterTypes();
            int idx = blocks.size();
            blocks.add("");
            for (int i = 0; i < ps.length; i++)
                sb.append("  ").append(field(types[i], Props.snake(ps[i].getName()), i + 1, m.getName() + " parameter " + ps[i].getName())).append('\n');
            blocks.set(idx, sb.append("}\n").toString());
            return name;
        }

        String response(Method m, String rpc) {
            Class<?> r = m.getReturnType();
            if (Props.isPojo(r)) return message(r, m.getName() + " result");
            String name = unique(rpc + "Response");
            int idx = blocks.size();
            blocks.add("");
            String body = r == void.class ? "" : "  " + field(m.getGenericReturnType(), isRepeated(r) ? "values" : "value", 1, m.getName() + " result") + "\n";
            blocks.set(idx, "message " + name + " {\n" + body + "}\n");
            return name;
        }

        static boolean isRepeated(Class<?> r) { return (r.isArray() && r != byte[].class) || Props.isCollection(r); }

        /** A field declaration (without indentation). */
        String field(Type t, String name, int number, String where) {
            Class<?> r = Binder.raw(t);
            if (r == java.util.Optional.class) {
                Type inner = Binder.typeArg(t, 0);
                String s = scalar(Binder.raw(inner));
                if (s != null) return "optional " + s + " " + name + " = " + number + ";";
                return field(inner, name, number, where);
            }
            if (Props.isMap(r)) {
                String k = scalar(Binder.raw(Binder.typeArg(t, 0)));
                if (k == null || k.equals("double") || k.equals("float") || k.equals("bytes")) {
                    errors.add(where + ": map key type " + Binder.typeArg(t, 0).getTypeName() + " is not a string/integer/bool");
                    return "// " + name;
                }
                return "map<" + k + ", " + element(Binder.typeArg(t, 1), where) + "> " + name + " = " + number + ";";
            }
            if (isRepeated(r)) return "repeated " + element(Binder.component(t), where) + " " + name + " = " + number + ";";
            return single(t, where) + " " + name + " = " + number + ";";
        }

        /** The type of a repeated element / map value: nested repeated values or maps get a wrapper message. */
        String element(Type t, String where) {
            Class<?> r = Binder.raw(t);
            if (isRepeated(r) || Props.isMap(r)) {
                String key = "wrap:" + t.getTypeName();
                String n = names.get(key);
                if (n != null) return n;
                n = unique(wrapperName(t));
                names.put(key, n);
                int idx = blocks.size();
                blocks.add("");
                blocks.set(idx, "message " + n + " {\n  " + field(t, isRepeated(r) ? "values" : "entries", 1, where) + "\n}\n");
                return n;
            }
            return single(t, where);
        }

        String wrapperName(Type t) {
            Class<?> r = Binder.raw(t);
            if (isRepeated(r)) return wrapperName(Binder.component(t)) + "Array";
            if (Props.isMap(r)) return wrapperName(Binder.typeArg(t, 1)) + "Map";
            String s = scalar(r);
            if (s != null) return upperCamel(s.equals("int32") ? "int" : s.equals("int64") ? "long" : s);
            return r.getSimpleName();
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

        String enumType(Class<?> e) {
            String n = names.get(e);
            if (n != null) return n;
            n = unique(e.getSimpleName());
            names.put(e, n);
            Object[] ks = e.getEnumConstants();
            boolean clash = false;
            for (Object k : ks) if (enumValues.contains(((Enum<?>) k).name())) clash = true;
            String prefix = clash ? Props.snake(n).toUpperCase(java.util.Locale.ROOT) + "_" : "";
            StringBuilder sb = new StringBuilder("enum " + n + " {\n");
            for (Object k : ks) {
                enumValues.add(prefix + ((Enum<?>) k).name());
                sb.append("  ").append(prefix).append(((Enum<?>) k).name()).append(" = ").append(((Enum<?>) k).ordinal()).append(";\n");
            }
            blocks.add(sb.append("}\n").toString());
            return n;
        }

        String message(Class<?> c, String where) {
            String n = names.get(c);
            if (n != null) return n;
            n = unique(c.getSimpleName());
            names.put(c, n);
            int idx = blocks.size();
            blocks.add("");
            StringBuilder sb = new StringBuilder("message " + n + " {\n");
            int number = 1;
            for (Props.Prop p : Props.of(c)) {
                sb.append("  ").append(field(p.type, Props.snake(p.name), number++, c.getSimpleName() + "." + p.name)).append('\n');
            }
            blocks.set(idx, sb.append("}\n").toString());
            return n;
        }
    }
}
