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
 * generates a proto3 contract from a class's public method signatures ({@link ProtoGen}: its naming rules).
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

    /**
     * The public concrete classes of {@code jars[0]} (the other JARs only resolve its dependencies), each with its
     * public model methods: {@code [{"class", "methods": [{"name", "signature", "static", "convention",
     * "parameters", "parameter_names_missing"?}]}]}, sorted by class name (the caller ranks them). A class that
     * cannot be loaded or described is listed with {@code "error"} and, when a class it needs is absent from the
     * JARs, {@code "missing"} (that class's name) instead of being left out. Class files are first read for their
     * access flags, so only public concrete classes are loaded (a fat JAR's thousands of library classes stay
     * unloaded unless public).
     */
    static String listCandidates(String[] jars) throws HostException {
        List<Object> out = new ArrayList<>();
        try (ModelLoader loader = loader(jars); ZipFile z = new ZipFile(jars[0])) {
            boolean acumos = z.getEntry("modelConfig.properties") != null;
            List<String> names = new ArrayList<>();
            for (Enumeration<? extends ZipEntry> en = z.entries(); en.hasMoreElements(); ) {
                ZipEntry entry = en.nextElement();
                String n = entry.getName();
                if (!n.endsWith(".class") || n.startsWith("META-INF/") || n.endsWith("module-info.class")
                        || n.endsWith("package-info.class")) continue;
                String cn = n.substring(0, n.length() - 6).replace('/', '.');
                if (cn.matches(".*\\$\\d.*")) continue; // anonymous classes
                int flags;
                try (java.io.InputStream in = z.getInputStream(entry)) {
                    flags = classAccessFlags(in);
                }
                if (flags >= 0 && ((flags & 0x0001) == 0 || (flags & NOT_A_CANDIDATE) != 0)) continue;
                names.add(cn);
            }
            names.sort(null);
            for (String cn : names) {
                Class<?> c;
                try {
                    c = Class.forName(cn, false, loader);
                } catch (Exception | LinkageError e) {
                    out.add(unloadable(cn, e));
                    continue;
                }
                if (!Modifier.isPublic(c.getModifiers()) || c.isInterface() || c.isEnum() || c.isAnnotation()
                        || Modifier.isAbstract(c.getModifiers()) || c.isRecord()) continue;
                List<Object> ms = new ArrayList<>();
                try {
                    for (Method m : modelMethods(c)) ms.add(candidateMethod(m, acumos));
                } catch (Exception | LinkageError e) { // a signature names a class missing from the JARs
                    out.add(unloadable(cn, e));
                    continue;
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

    /** ACC_INTERFACE | ACC_ABSTRACT | ACC_ANNOTATION | ACC_ENUM: never a model class. */
    private static final int NOT_A_CANDIDATE = 0x0200 | 0x0400 | 0x2000 | 0x4000;

    /** One method of a candidate: how it would bind to a contract generated from it (Slot.bind's detection). */
    private static Map<String, Object> candidateMethod(Method m, boolean acumos) {
        Map<String, Object> mm = new LinkedHashMap<>();
        mm.put("name", m.getName());
        mm.put("signature", m.toGenericString());
        mm.put("static", Modifier.isStatic(m.getModifiers()));
        Parameter[] ps = m.getParameters();
        Class<?>[] types = m.getParameterTypes();
        String convention;
        if (Slot.looksProto(m)) convention = "proto";
        else if (acumos && Acumos.callable(m)) convention = "acumos";
        else convention = types.length == 1 ? "pojo" : "params";
        mm.put("convention", convention);
        List<Object> pn = new ArrayList<>();
        for (Parameter p : ps) pn.add(p.getName());
        mm.put("parameters", pn);
        // the parameter names become field names of the generated contract unless the one parameter is a class
        // (its properties are the fields): without -parameters they would be arg0, arg1, ...
        boolean namesUsed = (convention.equals("pojo") || convention.equals("params")) && ps.length > 0
                && !(ps.length == 1 && Props.isPojo(types[0]) && !types[0].isInterface());
        if (namesUsed && !ps[0].isNamePresent()) mm.put("parameter_names_missing", true);
        return mm;
    }

    /** A class that could not be loaded or described: its name, the error, and the missing class if one is. */
    private static Map<String, Object> unloadable(String cn, Throwable e) {
        Map<String, Object> cm = new LinkedHashMap<>();
        cm.put("class", cn);
        cm.put("methods", new ArrayList<>());
        cm.put("error", e.toString());
        String missing = missingClass(e);
        if (missing != null) cm.put("missing", missing);
        return cm;
    }

    /** The class whose absence caused {@code e} (NoClassDefFoundError, ClassNotFoundException,
     *  TypeNotPresentException anywhere in the cause chain), as a binary name; null when none is. */
    static String missingClass(Throwable e) {
        for (Throwable t = e; t != null && t.getCause() != t; t = t.getCause()) {
            String n = null;
            if (t instanceof TypeNotPresentException) n = ((TypeNotPresentException) t).typeName();
            else if (t instanceof NoClassDefFoundError || t instanceof ClassNotFoundException) n = t.getMessage();
            if (n != null && n.matches("[\\w$./]+")) return n.replace('/', '.');
        }
        return null;
    }

    /** The access_flags of a class file (JVMS 4.1: after the magic, the versions and the constant pool); -1 when
     *  the bytes are not a class file this reader understands (the class is then loaded to find out). */
    static int classAccessFlags(java.io.InputStream raw) {
        try {
            java.io.DataInputStream in = new java.io.DataInputStream(new java.io.BufferedInputStream(raw));
            if (in.readInt() != 0xCAFEBABE) return -1;
            in.readUnsignedShort();
            in.readUnsignedShort();
            int count = in.readUnsignedShort();
            for (int i = 1; i < count; i++) {
                int tag = in.readUnsignedByte();
                switch (tag) {
                    case 1: in.skipNBytes(in.readUnsignedShort()); break;               // Utf8
                    case 3: case 4: in.skipNBytes(4); break;                           // Integer, Float
                    case 5: case 6: in.skipNBytes(8); i++; break;                      // Long, Double: two slots
                    case 7: case 8: case 16: case 19: case 20: in.skipNBytes(2); break; // Class, String, MethodType, Module, Package
                    case 15: in.skipNBytes(3); break;                                  // MethodHandle
                    case 9: case 10: case 11: case 12: case 17: case 18: in.skipNBytes(4); break; // refs, NameAndType, (Invoke)Dynamic
                    default: return -1;
                }
            }
            return in.readUnsignedShort();
        } catch (java.io.IOException e) {
            return -1;
        }
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
                return new ProtoGen(c, pkg).generate(methods);
            } catch (LinkageError e) {
                throw new HostException("inspect", "a type used by " + className + " cannot be loaded: " + e, e, null);
            }
        } catch (java.io.IOException e) {
            throw new HostException("load", e.toString(), e, null);
        }
    }
}
