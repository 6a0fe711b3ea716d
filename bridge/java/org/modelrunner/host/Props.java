package org.modelrunner.host;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The properties of a Java class as the bridge sees them, in a stable order: record components in
 * declaration order; otherwise instance fields in declaration order (superclasses first), each read by its
 * getter ({@code getX}/{@code isX}) and written by its setter when they exist, else directly; then bean
 * properties with no backing field, sorted by name.
 */
final class Props {
    private Props() {}

    static final class Prop {
        final String name;
        final Type type;
        final Class<?> raw;
        Method getter, setter;
        Field field;
        int componentIndex = -1;

        Prop(String name, Type type, Class<?> raw) { this.name = name; this.type = type; this.raw = raw; }

        boolean readable() { return getter != null || field != null; }
        boolean writable(boolean record) { return record ? componentIndex >= 0 : setter != null || (field != null && !Modifier.isFinal(field.getModifiers())); }
    }

    private static final ClassValue<List<Prop>> CACHE = new ClassValue<>() {
        @Override protected List<Prop> computeValue(Class<?> c) { return compute(c); }
    };

    static List<Prop> of(Class<?> c) { return CACHE.get(c); }

    /** True for classes bound field by field to a message (not scalars, collections, arrays, JDK types). */
    static boolean isPojo(Class<?> c) {
        if (c.isPrimitive() || c.isArray() || c.isEnum() || c.isAnnotation()) return false;
        String n = c.getName();
        return !(n.startsWith("java.") || n.startsWith("javax.") || n.startsWith("jdk.") || n.startsWith("sun."));
    }

    static boolean isCollection(Class<?> c) { return Collection.class.isAssignableFrom(c) || c == Iterable.class; }
    static boolean isMap(Class<?> c) { return Map.class.isAssignableFrom(c); }
    static boolean isOptional(Class<?> c) { return c == Optional.class; }

    private static List<Prop> compute(Class<?> c) {
        List<Prop> out = new ArrayList<>();
        if (c.isRecord()) {
            RecordComponent[] rc = c.getRecordComponents();
            for (int i = 0; i < rc.length; i++) {
                Prop p = new Prop(rc[i].getName(), rc[i].getGenericType(), rc[i].getType());
                p.getter = rc[i].getAccessor();
                p.componentIndex = i;
                out.add(p);
            }
            return out;
        }
        Map<String, Prop> byName = new LinkedHashMap<>();
        List<Class<?>> chain = new ArrayList<>();
        for (Class<?> k = c; k != null && k != Object.class; k = k.getSuperclass()) chain.add(0, k);
        for (Class<?> k : chain) {
            for (Field f : k.getDeclaredFields()) {
                int m = f.getModifiers();
                if (Modifier.isStatic(m) || Modifier.isTransient(m) || f.isSynthetic()) continue;
                if (byName.containsKey(f.getName())) continue;
                Prop p = new Prop(f.getName(), f.getGenericType(), f.getType());
                p.field = f;
                byName.put(f.getName(), p);
            }
        }
        Map<String, Prop> extra = new TreeMap<>();
        for (Method m : c.getMethods()) {
            if (Modifier.isStatic(m.getModifiers()) || m.getDeclaringClass() == Object.class || m.isBridge()) continue;
            String n = m.getName();
            String prop = null;
            boolean getter = false;
            if (m.getParameterCount() == 0 && m.getReturnType() != void.class) {
                if (n.startsWith("get") && n.length() > 3) { prop = decap(n.substring(3)); getter = true; }
                else if (n.startsWith("is") && n.length() > 2 && (m.getReturnType() == boolean.class || m.getReturnType() == Boolean.class)) { prop = decap(n.substring(2)); getter = true; }
            } else if (m.getParameterCount() == 1 && n.startsWith("set") && n.length() > 3) {
                prop = decap(n.substring(3));
            }
            if (prop == null || prop.equals("class")) continue;
            Prop p = byName.get(prop);
            if (p == null) {
                p = extra.get(prop);
                if (p == null) {
                    Type t = getter ? m.getGenericReturnType() : m.getGenericParameterTypes()[0];
                    Class<?> r = getter ? m.getReturnType() : m.getParameterTypes()[0];
                    p = new Prop(prop, t, r);
                    extra.put(prop, p);
                }
            }
            if (getter) { if (p.raw == m.getReturnType()) p.getter = m; }
            else if (p.raw == m.getParameterTypes()[0]) p.setter = m;
        }
        out.addAll(byName.values());
        for (Prop p : extra.values()) if (p.getter != null || p.setter != null) out.add(p);
        return out;
    }

    private static String decap(String s) {
        if (s.length() > 1 && Character.isUpperCase(s.charAt(0)) && Character.isUpperCase(s.charAt(1))) return s;
        return Character.toLowerCase(s.charAt(0)) + s.substring(1);
    }

    /** {@code sepal_length -> sepalLength}. */
    static String camel(String snake) {
        StringBuilder sb = new StringBuilder();
        boolean up = false;
        for (char ch : snake.toCharArray()) {
            if (ch == '_') { up = sb.length() > 0; continue; }
            sb.append(up ? Character.toUpperCase(ch) : ch);
            up = false;
        }
        return sb.toString();
    }

    /** {@code sepalLength -> sepal_length}. */
    static String snake(String camel) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < camel.length(); i++) {
            char ch = camel.charAt(i);
            if (Character.isUpperCase(ch)) {
                boolean prevLower = i > 0 && !Character.isUpperCase(camel.charAt(i - 1)) && camel.charAt(i - 1) != '_';
                boolean nextLower = i + 1 < camel.length() && Character.isLowerCase(camel.charAt(i + 1));
                if (i > 0 && (prevLower || (nextLower && Character.isUpperCase(camel.charAt(i - 1))))) sb.append('_');
                sb.append(Character.toLowerCase(ch));
            } else sb.append(ch);
        }
        return sb.toString();
    }

    static String normalized(String s) { return s.replace("_", "").toLowerCase(java.util.Locale.ROOT); }

    /** Finds the Java name bound to proto field {@code protoName}: exact, lower camel, then case/underscore-insensitive. */
    static <T> T match(String protoName, Map<String, T> javaNames) {
        T v = javaNames.get(protoName);
        if (v == null) v = javaNames.get(camel(protoName));
        if (v == null) {
            String n = normalized(protoName);
            for (Map.Entry<String, T> e : javaNames.entrySet()) if (normalized(e.getKey()).equals(n)) return e.getValue();
        }
        return v;
    }

    /** Reads property {@code protoName} of any object by reflection (slow path: Acumos outputs). */
    static Object read(Object bean, String protoName) throws ReflectiveOperationException {
        Map<String, Prop> byName = new LinkedHashMap<>();
        for (Prop p : of(bean.getClass())) byName.put(p.name, p);
        Prop p = match(protoName, byName);
        if (p == null) return null;
        if (p.getter != null) { p.getter.setAccessible(true); return p.getter.invoke(bean); }
        if (p.field != null) { p.field.setAccessible(true); return p.field.get(bean); }
        return null;
    }
}
